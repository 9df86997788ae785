/* Secure aggregation as an aggregation stage: the coordinator learns only the sum of the
 * agents' vectors (updates, or the statistics round's moments), not any one of them, and the
 * sum survives agents dropping out. Bonawitz et al. 2017, "Practical Secure Aggregation for
 * Privacy-Preserving Machine Learning" (CCS'17), the semi-honest protocol of section 4 (Figure
 * 4), over OpenSSL:
 *   round 0  each agent u makes two X25519 key pairs, c_u (to encrypt shares) and s_u (masks),
 *            and sends both public keys; the server forwards the list to everyone;
 *   round 1  u draws a self-mask seed b_u, splits b_u and s_u's private key into t-of-n Shamir
 *            shares (per byte over GF(2^8)), and sends share v of each to agent v through the
 *            server, encrypted with ChaCha20-Poly1305 under HKDF(X25519(c_u, c_v));
 *   round 2  u sends y_u = x_u + PRG(b_u) + sum_{v > u} PRG(s_uv) - sum_{v < u} PRG(s_uv)
 *            (mod 2^32, x_u in fixed point), where s_uv = HKDF(X25519(s_u, s_v)) is the pair's
 *            common seed and PRG the ChaCha20 keystream: the pairwise masks cancel in the sum;
 *   round 3  the server names the agents whose y arrived; each survivor returns, for every
 *            other agent v, its share of b_v when v survived or of s_v's key when v dropped;
 *            with t shares of each the server removes the self-masks of the survivors and the
 *            pairwise masks the dropped agents left behind, and obtains sum_u x_u.
 * A server that follows the protocol learns nothing about one x_u beyond the sum (fewer than t
 * agents colluding with it learn nothing either); the paper's malicious-server variant (signed
 * messages, consistency checks, section 6) is not implemented. Fixed point: x is scaled by
 * 2^frac_bits and rounded, each coordinate clipped to +-clip first; the sum of n such values must
 * fit 31 bits (fmq_secagg_params_check). Robust rules need each update, so secure aggregation
 * serves plain (clipped, DP) averaging: the sum and the count are what the coordinator gets.
 * Pure computation: messages are byte arrays the caller carries (MQTT in fedmq); nothing here
 * does I/O. */
#ifndef FMQ_SECAGG_H
#define FMQ_SECAGG_H

#include <stddef.h>
#include <stdint.h>

#define FMQ_SECAGG_MAX_N 255 /* Shamir over GF(2^8): share x-coordinates 1..255 */
#define FMQ_SECAGG_KEY 32    /* X25519 keys, seeds */
#define FMQ_SECAGG_SHARE (1 + 2 * FMQ_SECAGG_KEY) /* x, b share, s share */
#define FMQ_SECAGG_CIPHER (FMQ_SECAGG_SHARE + 16) /* + Poly1305 tag */
#define FMQ_SECAGG_ANSWER (1 + FMQ_SECAGG_KEY)    /* one round-3 answer entry */

struct fmq_secagg_params {
    int n;                /* agents, indices 0..n-1, at most FMQ_SECAGG_MAX_N */
    int t;                /* threshold: shares needed, 2 <= t <= n; survivors must be >= t */
    uint32_t dim;         /* vector length */
    int frac_bits;        /* fixed point: x * 2^frac_bits */
    float clip;           /* every coordinate clipped to +-clip before encoding */
    uint8_t round_id[16]; /* binds keys and masks to one round (e.g. the model version) */
};
/* A round id for fedmq's rounds: the version (little-endian), then an FNV-1a 64 of the
 * coordinator's run id and the phase. */
void fmq_secagg_round_id(const char *run, uint64_t version, int phase, uint8_t id[16]);
/* Whether both public keys of an agent (64 bytes) are X25519 points every agent can agree with
 * (not of low order); the coordinator checks keys before the roster, so one bad key cannot make
 * every honest agent's sharing fail. 0 or FMQ_EINVAL. */
int fmq_secagg_pub_check(const uint8_t pub[2 * FMQ_SECAGG_KEY]);
/* The sum of n values in [-clip, clip] at frac_bits must fit a signed 32-bit ring. 0 or
 * FMQ_EINVAL. */
int fmq_secagg_params_check(const struct fmq_secagg_params *p);

/* One agent's state for one round. */
struct fmq_secagg_client {
    struct fmq_secagg_params p;
    int u;               /* this agent's index */
    void *c_key, *s_key; /* owned EVP_PKEY (X25519) */
    uint8_t c_pub[FMQ_SECAGG_KEY], s_pub[FMQ_SECAGG_KEY];
    uint8_t s_priv[FMQ_SECAGG_KEY], b[FMQ_SECAGG_KEY]; /* s_u's private key, self-mask seed */
    uint8_t (*pubs)[2][FMQ_SECAGG_KEY];                /* owned: every agent's (c, s) public keys */
    uint8_t (*held)[FMQ_SECAGG_SHARE]; /* owned: the share each agent v gave this one */
    uint8_t *have;                     /* owned: which held[v] arrived and decrypted */
    uint8_t *peer;                     /* owned: who shared with u (u masks with them) */
    int bad;                           /* shares in the last mask call that did not decrypt */
};
/* Round 0 in two steps, for a carrier where the agents' number and order are known only once
 * the keys are in (fedmq over MQTT: the coordinator fixes the roster from the keys it got):
 * _keys makes the key pairs and the self-mask seed (pub_out gets (c_pub, s_pub), 64 bytes);
 * _join then sets the round's parameters and this agent's index. Free with _free either way. */
int fmq_secagg_client_keys(struct fmq_secagg_client *c, uint8_t pub_out[2 * FMQ_SECAGG_KEY]);
int fmq_secagg_client_join(struct fmq_secagg_client *c, const struct fmq_secagg_params *p, int u);
/* Both at once: makes the key pairs; pub_out gets (c_pub, s_pub), 64 bytes. */
int fmq_secagg_client_init(struct fmq_secagg_client *c, const struct fmq_secagg_params *p, int u,
                           uint8_t pub_out[2 * FMQ_SECAGG_KEY]);
void fmq_secagg_client_free(struct fmq_secagg_client *c);
/* Round 1: given every agent's public keys (n x 64 bytes; an absent agent's all zero), writes
 * n encrypted shares of FMQ_SECAGG_CIPHER bytes, the one for v at out + v x FMQ_SECAGG_CIPHER
 * (zero for absent agents and u itself, whose share it keeps). */
int fmq_secagg_client_share(struct fmq_secagg_client *c, const uint8_t *pubs, uint8_t *out);
/* Round 2: takes the encrypted shares addressed to u (n x FMQ_SECAGG_CIPHER, from agent v at
 * v's slot, zero when v sent none), and writes y (dim) for x (dim). Agents that sent no share
 * are treated as absent. A share that does not decrypt (forged by its sender, or corrupted) is
 * counted in c->bad and only costs u its part in recovering that sender's secrets: u still
 * masks with it, since the sender masks with u, so one liar cannot make honest agents drop. */
int fmq_secagg_client_mask(struct fmq_secagg_client *c, const uint8_t *shares_in, const float *x,
                           uint32_t *y);
/* Round 3: survived[v] (n) says whose y arrived; writes for every v the share u holds (b_v's
 * for survivors, s_v's key for the dropped), n x (1 + FMQ_SECAGG_KEY) bytes, x-coordinate
 * first (0 = none). */
int fmq_secagg_client_unmask(struct fmq_secagg_client *c, const uint8_t *survived, uint8_t *out);

/* The server: collects y from survivors and the survivors' round-3 answers, then the sum. */
struct fmq_secagg_server {
    struct fmq_secagg_params p;
    uint8_t (*pubs)[2][FMQ_SECAGG_KEY]; /* owned: round 0's keys */
    uint32_t *acc;                      /* owned: sum of the y that arrived, dim */
    uint8_t *survived;                  /* owned: n */
    uint8_t *shares;                    /* owned: n x n x (1 + KEY): answer of u for v */
    uint8_t *answered;                  /* owned: n */
    uint8_t *shared;                    /* owned: n, whose shares were routed (default all) */
    int unrecovered; /* after a failed sum: the agent whose secret had fewer than t good shares
                        (a forger of shares, to leave out of later rounds), or -1 */
};
int fmq_secagg_server_init(struct fmq_secagg_server *s, const struct fmq_secagg_params *p,
                           const uint8_t *pubs);
void fmq_secagg_server_free(struct fmq_secagg_server *s);
/* The agents whose shares the server routed to every other (U1; by default all): the others
 * took part in nobody's masks. */
void fmq_secagg_server_routed(struct fmq_secagg_server *s, const uint8_t *shared);
int fmq_secagg_server_add(struct fmq_secagg_server *s, int u, const uint32_t *y);
/* u's round-3 answer; an entry not at x = u + 1, or for an agent whose shares were not routed,
 * is dropped (a liar's: it could otherwise make the combination fail or frame that agent). */
int fmq_secagg_server_answer(struct fmq_secagg_server *s, int u, const uint8_t *answer);
/* How many answers hold a share of v (after a failed sum: fewer than half of the answerers
 * means v's own shares did not decrypt, a forger's; one liar cannot bring an honest v there). */
int fmq_secagg_server_holders(const struct fmq_secagg_server *s, int v);
/* sum (dim) of the survivors' x and their number; FMQ_ERANGE when fewer than t survived or
 * answered (the round cannot be unmasked: nothing is revealed). */
int fmq_secagg_server_sum(struct fmq_secagg_server *s, double *sum, int *count);

/* Shamir's secret sharing over GF(2^8), byte by byte (exposed for the unit tests): n shares of
 * len bytes, share i at x = i + 1; any t recover the secret. */
int fmq_shamir_split(const uint8_t *secret, size_t len, int n, int t, uint8_t *shares);
int fmq_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, int t, size_t len,
                       uint8_t *secret);

#endif

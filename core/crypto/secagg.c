/* Secure aggregation with pairwise masks and dropout recovery (see secagg.h for the protocol
 * and its reference, Bonawitz et al. 2017). OpenSSL supplies X25519, HKDF-SHA256, the ChaCha20
 * keystream (the PRG) and ChaCha20-Poly1305 (the shares in transit); Shamir's scheme runs per
 * byte over GF(2^8) with the AES polynomial. Every OpenSSL call is checked here and turned into
 * an FMQ_E* code; keys and seeds are wiped when a client is freed. */
#include "fedmq/secagg.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "fedmq/common.h"

/* ---- GF(2^8), x^8 + x^4 + x^3 + x + 1, generator 3 ---- */

static uint8_t gf_exp[512], gf_log[256];

static void gf_init(void)
{
    static int done;
    unsigned x = 1;
    if (done) return;
    for (int i = 0; i < 255; i++) {
        gf_exp[i] = gf_exp[i + 255] = (uint8_t)x;
        gf_log[x] = (uint8_t)i;
        x ^= (x << 1) ^ ((x & 0x80) ? 0x11b : 0); /* x * 3 */
        x &= 0xff;
    }
    done = 1;
}

static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    return a && b ? gf_exp[gf_log[a] + gf_log[b]] : 0;
}

static uint8_t gf_div(uint8_t a, uint8_t b) /* b != 0 */
{
    return a ? gf_exp[gf_log[a] + 255 - gf_log[b]] : 0;
}

int fmq_shamir_split(const uint8_t *secret, size_t len, int n, int t, uint8_t *shares)
{
    uint8_t coef[FMQ_SECAGG_MAX_N];
    if (n < 1 || n > FMQ_SECAGG_MAX_N || t < 1 || t > n) return FMQ_EINVAL;
    gf_init();
    for (size_t k = 0; k < len; k++) {
        coef[0] = secret[k];
        if (t > 1 && RAND_bytes(coef + 1, t - 1) != 1) return FMQ_EIO;
        for (int i = 0; i < n; i++) { /* Horner at x = i + 1 */
            uint8_t x = (uint8_t)(i + 1), y = 0;
            for (int j = t - 1; j >= 0; j--) y = gf_mul(y, x) ^ coef[j];
            shares[(size_t)i * len + k] = y;
        }
    }
    OPENSSL_cleanse(coef, sizeof coef);
    return 0;
}

int fmq_shamir_combine(const uint8_t *xs, const uint8_t *const *ys, int t, size_t len,
                       uint8_t *secret)
{
    uint8_t lag[FMQ_SECAGG_MAX_N];
    if (t < 1 || t > FMQ_SECAGG_MAX_N) return FMQ_EINVAL;
    gf_init();
    for (int j = 0; j < t; j++) { /* Lagrange basis at 0: prod x_m / (x_m - x_j) */
        uint8_t l = 1;
        if (!xs[j]) return FMQ_EINVAL;
        for (int m = 0; m < t; m++) {
            if (m == j) continue;
            if (xs[m] == xs[j]) return FMQ_EINVAL;
            l = gf_mul(l, gf_div(xs[m], xs[m] ^ xs[j]));
        }
        lag[j] = l;
    }
    for (size_t k = 0; k < len; k++) {
        uint8_t s = 0;
        for (int j = 0; j < t; j++) s ^= gf_mul(lag[j], ys[j][k]);
        secret[k] = s;
    }
    return 0;
}

/* ---- OpenSSL primitives ---- */

static EVP_PKEY *x25519_new(void)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    if (!ctx || EVP_PKEY_keygen_init(ctx) != 1 || EVP_PKEY_keygen(ctx, &k) != 1) k = NULL;
    EVP_PKEY_CTX_free(ctx);
    return k;
}

/* The 32-byte seed of a key pair: HKDF-SHA256(X25519(priv, peer), salt round_id, info
 * label || the two indices, smaller first). */
static int agree(const EVP_PKEY *priv, const uint8_t *peer_pub, const uint8_t *round_id,
                 const char *label, int a, int b, uint8_t out[FMQ_SECAGG_KEY])
{
    EVP_PKEY *peer = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer_pub, FMQ_SECAGG_KEY);
    EVP_PKEY_CTX *dh = NULL, *kdf = NULL;
    uint8_t z[FMQ_SECAGG_KEY], info[16];
    size_t zn = sizeof z, on = FMQ_SECAGG_KEY;
    int rc = FMQ_EIO, lo = a < b ? a : b, hi = a < b ? b : a;
    memset(info, 0, sizeof info);
    memcpy(info, label, strlen(label) < 8 ? strlen(label) : 8);
    info[8] = (uint8_t)lo, info[9] = (uint8_t)(lo >> 8), info[10] = (uint8_t)hi,
    info[11] = (uint8_t)(hi >> 8);
    if (!peer || !(dh = EVP_PKEY_CTX_new((EVP_PKEY *)priv, NULL)) ||
        EVP_PKEY_derive_init(dh) != 1 || EVP_PKEY_derive_set_peer(dh, peer) != 1 ||
        EVP_PKEY_derive(dh, z, &zn) != 1 ||
        zn != sizeof z) /* OpenSSL refuses an all-zero result (a low-order peer key) */
        goto out;
    if (!(kdf = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL)) || EVP_PKEY_derive_init(kdf) != 1 ||
        EVP_PKEY_CTX_set_hkdf_md(kdf, EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_salt(kdf, round_id, 16) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_key(kdf, z, (int)zn) != 1 ||
        EVP_PKEY_CTX_add1_hkdf_info(kdf, info, sizeof info) != 1 ||
        EVP_PKEY_derive(kdf, out, &on) != 1 || on != FMQ_SECAGG_KEY)
        goto out;
    rc = 0;
out:
    OPENSSL_cleanse(z, sizeof z);
    EVP_PKEY_CTX_free(kdf);
    EVP_PKEY_CTX_free(dh);
    EVP_PKEY_free(peer);
    return rc;
}

/* acc (dim) += sign x ChaCha20 keystream of seed, read as little-endian uint32 (mod 2^32). */
static int prg_add(const uint8_t seed[FMQ_SECAGG_KEY], int sign, uint32_t *acc, uint32_t dim)
{
    static const uint8_t zero[256];
    uint8_t iv[16] = {0}, ks[256];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = FMQ_EIO, n;
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_chacha20(), NULL, seed, iv) != 1) goto out;
    for (uint32_t i = 0; i < dim;) {
        uint32_t k = dim - i < 64 ? dim - i : 64;
        if (EVP_EncryptUpdate(ctx, ks, &n, zero, (int)(4 * k)) != 1 || n != (int)(4 * k)) goto out;
        for (uint32_t j = 0; j < k; j++, i++) {
            uint32_t r = (uint32_t)ks[4 * j] | (uint32_t)ks[4 * j + 1] << 8 |
                         (uint32_t)ks[4 * j + 2] << 16 | (uint32_t)ks[4 * j + 3] << 24;
            acc[i] += sign > 0 ? r : 0u - r;
        }
    }
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* ChaCha20-Poly1305 of one share, nonce = (from, to); enc 1 seals, 0 opens (tag checked). */
static int aead(const uint8_t key[FMQ_SECAGG_KEY], int from, int to, int enc, const uint8_t *in,
                uint8_t *out)
{
    uint8_t nonce[12] = {(uint8_t)from, (uint8_t)(from >> 8), (uint8_t)to, (uint8_t)(to >> 8)};
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int rc = FMQ_EIO, n, f;
    if (!ctx || EVP_CipherInit_ex(ctx, EVP_chacha20_poly1305(), NULL, NULL, NULL, enc) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, sizeof nonce, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
        goto out;
    if (!enc &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(in + FMQ_SECAGG_SHARE)) != 1)
        goto out;
    if (EVP_CipherUpdate(ctx, out, &n, in, FMQ_SECAGG_SHARE) != 1 ||
        EVP_CipherFinal_ex(ctx, out + n, &f) != 1) {
        rc = FMQ_EFORMAT; /* a forged or damaged share */
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + FMQ_SECAGG_SHARE) != 1)
        goto out;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

static int zeroes(const uint8_t *p, size_t n)
{
    uint8_t a = 0;
    for (size_t i = 0; i < n; i++) a |= p[i];
    return a == 0;
}

void fmq_secagg_round_id(const char *run, uint64_t version, int phase, uint8_t id[16])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a 64 */
    for (const char *p = run; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ (uint64_t)(unsigned)phase) * 1099511628211ULL;
    for (int i = 0; i < 8; i++)
        id[i] = (uint8_t)(version >> (8 * i)), id[8 + i] = (uint8_t)(h >> (8 * i));
}

int fmq_secagg_params_check(const struct fmq_secagg_params *p)
{
    if (p->n < 2 || p->n > FMQ_SECAGG_MAX_N || p->t < 2 || p->t > p->n || p->dim == 0 ||
        p->frac_bits < 0 || p->frac_bits > 30 || !(p->clip > 0))
        return FMQ_EINVAL;
    return (double)p->n * p->clip * ldexp(1.0, p->frac_bits) < 2147483647.0 ? 0 : FMQ_EINVAL;
}

/* ---- client ---- */

void fmq_secagg_client_free(struct fmq_secagg_client *c)
{
    EVP_PKEY_free(c->c_key);
    EVP_PKEY_free(c->s_key);
    if (c->held) OPENSSL_cleanse(c->held, (size_t)c->p.n * FMQ_SECAGG_SHARE);
    free(c->held);
    free(c->pubs);
    free(c->have);
    free(c->peer);
    OPENSSL_cleanse(c, sizeof *c);
}

int fmq_secagg_client_keys(struct fmq_secagg_client *c, uint8_t pub_out[2 * FMQ_SECAGG_KEY])
{
    size_t len = FMQ_SECAGG_KEY;
    memset(c, 0, sizeof *c);
    c->u = -1;
    if (!(c->c_key = x25519_new()) || !(c->s_key = x25519_new()) ||
        EVP_PKEY_get_raw_public_key(c->c_key, c->c_pub, &len) != 1 ||
        EVP_PKEY_get_raw_public_key(c->s_key, c->s_pub, &len) != 1 ||
        EVP_PKEY_get_raw_private_key(c->s_key, c->s_priv, &len) != 1 ||
        RAND_bytes(c->b, sizeof c->b) != 1) {
        fmq_secagg_client_free(c);
        return FMQ_EIO;
    }
    memcpy(pub_out, c->c_pub, FMQ_SECAGG_KEY);
    memcpy(pub_out + FMQ_SECAGG_KEY, c->s_pub, FMQ_SECAGG_KEY);
    return 0;
}

int fmq_secagg_client_join(struct fmq_secagg_client *c, const struct fmq_secagg_params *p, int u)
{
    if (!c->c_key || c->pubs || fmq_secagg_params_check(p) || u < 0 || u >= p->n) return FMQ_EINVAL;
    if (!(c->pubs = calloc((size_t)p->n, sizeof *c->pubs)) ||
        !(c->held = calloc((size_t)p->n, sizeof *c->held)) ||
        !(c->have = calloc((size_t)p->n, 1)) || !(c->peer = calloc((size_t)p->n, 1))) {
        free(c->pubs), free(c->held), free(c->have), free(c->peer);
        c->pubs = NULL, c->held = NULL, c->have = NULL, c->peer = NULL;
        return FMQ_ENOMEM;
    }
    c->p = *p;
    c->u = u;
    return 0;
}

int fmq_secagg_client_init(struct fmq_secagg_client *c, const struct fmq_secagg_params *p, int u,
                           uint8_t pub_out[2 * FMQ_SECAGG_KEY])
{
    int rc;
    if (fmq_secagg_params_check(p) || u < 0 || u >= p->n) {
        memset(c, 0, sizeof *c);
        return FMQ_EINVAL;
    }
    if ((rc = fmq_secagg_client_keys(c, pub_out)) != 0) return rc;
    if ((rc = fmq_secagg_client_join(c, p, u)) != 0) fmq_secagg_client_free(c);
    return rc;
}

int fmq_secagg_client_share(struct fmq_secagg_client *c, const uint8_t *pubs, uint8_t *out)
{
    int n = c->p.n, rc;
    uint8_t *bs = malloc((size_t)n * FMQ_SECAGG_KEY), *ss = malloc((size_t)n * FMQ_SECAGG_KEY);
    uint8_t plain[FMQ_SECAGG_SHARE], key[FMQ_SECAGG_KEY];
    if (!c->pubs) { /* not joined */
        free(bs), free(ss);
        return FMQ_EINVAL;
    }
    if (!bs || !ss) {
        rc = FMQ_ENOMEM;
        goto out;
    }
    memcpy(c->pubs, pubs, (size_t)n * sizeof *c->pubs);
    if (memcmp(c->pubs[c->u][0], c->c_pub, FMQ_SECAGG_KEY) ||
        memcmp(c->pubs[c->u][1], c->s_pub, FMQ_SECAGG_KEY)) {
        rc = FMQ_EINVAL; /* the list does not carry this agent's own keys */
        goto out;
    }
    if ((rc = fmq_shamir_split(c->b, FMQ_SECAGG_KEY, n, c->p.t, bs)) ||
        (rc = fmq_shamir_split(c->s_priv, FMQ_SECAGG_KEY, n, c->p.t, ss)))
        goto out;
    memset(out, 0, (size_t)n * FMQ_SECAGG_CIPHER);
    for (int v = 0; v < n; v++) {
        plain[0] = (uint8_t)(v + 1);
        memcpy(plain + 1, bs + (size_t)v * FMQ_SECAGG_KEY, FMQ_SECAGG_KEY);
        memcpy(plain + 1 + FMQ_SECAGG_KEY, ss + (size_t)v * FMQ_SECAGG_KEY, FMQ_SECAGG_KEY);
        if (v == c->u) { /* kept, as if sent to itself */
            memcpy(c->held[v], plain, sizeof plain);
            c->have[v] = 1;
            continue;
        }
        if (zeroes(c->pubs[v][0], 2 * FMQ_SECAGG_KEY)) continue; /* absent */
        if ((rc = agree(c->c_key, c->pubs[v][0], c->p.round_id, "share", c->u, v, key)) ||
            (rc = aead(key, c->u, v, 1, plain, out + (size_t)v * FMQ_SECAGG_CIPHER)))
            goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(plain, sizeof plain);
    OPENSSL_cleanse(key, sizeof key);
    if (bs) OPENSSL_cleanse(bs, (size_t)n * FMQ_SECAGG_KEY);
    if (ss) OPENSSL_cleanse(ss, (size_t)n * FMQ_SECAGG_KEY);
    free(bs);
    free(ss);
    return rc;
}

static uint32_t encode(float x, const struct fmq_secagg_params *p)
{
    float v = x > p->clip ? p->clip : x < -p->clip ? -p->clip : x;
    return (uint32_t)(int32_t)lrint(ldexp((double)(v == v ? v : 0.0f), p->frac_bits));
}

int fmq_secagg_client_mask(struct fmq_secagg_client *c, const uint8_t *shares_in, const float *x,
                           uint32_t *y)
{
    uint8_t key[FMQ_SECAGG_KEY], plain[FMQ_SECAGG_SHARE];
    int rc = c->pubs ? 0 : FMQ_EINVAL;
    c->bad = 0;
    for (int v = 0; v < c->p.n && rc == 0; v++) { /* the shares addressed to u */
        const uint8_t *in = shares_in + (size_t)v * FMQ_SECAGG_CIPHER;
        if (v == c->u || zeroes(in, FMQ_SECAGG_CIPHER)) continue;
        if (zeroes(c->pubs[v][0], 2 * FMQ_SECAGG_KEY)) continue;
        c->peer[v] = 1; /* v shared with u, so v masks with u: u masks with v, whatever the share */
        if ((rc = agree(c->c_key, c->pubs[v][0], c->p.round_id, "share", v, c->u, key)) != 0) break;
        if (aead(key, v, c->u, 0, in, plain) != 0 || plain[0] != (uint8_t)(c->u + 1)) {
            c->bad++; /* a forged or corrupted share: u cannot help recover v, nothing more */
            continue;
        }
        memcpy(c->held[v], plain, sizeof plain);
        c->have[v] = 1;
    }
    for (uint32_t i = 0; rc == 0 && i < c->p.dim; i++) y[i] = encode(x[i], &c->p);
    if (rc == 0) rc = prg_add(c->b, 1, y, c->p.dim);
    for (int v = 0; v < c->p.n && rc == 0; v++) { /* pairwise masks with every agent that shared */
        if (v == c->u || !c->peer[v]) continue;
        if ((rc = agree(c->s_key, c->pubs[v][1], c->p.round_id, "mask", c->u, v, key)) == 0)
            rc = prg_add(key, v > c->u ? 1 : -1, y, c->p.dim);
    }
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(plain, sizeof plain);
    return rc;
}

int fmq_secagg_client_unmask(struct fmq_secagg_client *c, const uint8_t *survived, uint8_t *out)
{
    if (!c->pubs) return FMQ_EINVAL;
    for (int v = 0; v < c->p.n; v++) {
        uint8_t *o = out + (size_t)v * (1 + FMQ_SECAGG_KEY);
        memset(o, 0, 1 + FMQ_SECAGG_KEY);
        if (!c->have[v]) continue;
        o[0] = c->held[v][0];
        /* never both of one agent: b_v when v's y arrived, s_v's key when it did not */
        memcpy(o + 1, c->held[v] + 1 + (survived[v] ? 0 : FMQ_SECAGG_KEY), FMQ_SECAGG_KEY);
    }
    return 0;
}

/* ---- server ---- */

void fmq_secagg_server_free(struct fmq_secagg_server *s)
{
    if (s->shares)
        OPENSSL_cleanse(s->shares, (size_t)s->p.n * (size_t)s->p.n * (1 + FMQ_SECAGG_KEY));
    free(s->pubs);
    free(s->acc);
    free(s->survived);
    free(s->shares);
    free(s->answered);
    free(s->shared);
    memset(s, 0, sizeof *s);
}

int fmq_secagg_server_init(struct fmq_secagg_server *s, const struct fmq_secagg_params *p,
                           const uint8_t *pubs)
{
    size_t n = (size_t)p->n;
    memset(s, 0, sizeof *s);
    if (fmq_secagg_params_check(p)) return FMQ_EINVAL;
    s->p = *p;
    if (!(s->pubs = malloc(n * sizeof *s->pubs)) || !(s->acc = calloc(p->dim, sizeof *s->acc)) ||
        !(s->survived = calloc(n, 1)) || !(s->answered = calloc(n, 1)) ||
        !(s->shared = malloc(n)) || !(s->shares = calloc(n * n, 1 + FMQ_SECAGG_KEY))) {
        fmq_secagg_server_free(s);
        return FMQ_ENOMEM;
    }
    memcpy(s->pubs, pubs, n * sizeof *s->pubs);
    memset(s->shared, 1, n);
    return 0;
}

void fmq_secagg_server_routed(struct fmq_secagg_server *s, const uint8_t *shared)
{
    memcpy(s->shared, shared, (size_t)s->p.n);
}

int fmq_secagg_pub_check(const uint8_t pub[2 * FMQ_SECAGG_KEY])
{
    uint8_t rid[16] = {0}, out[FMQ_SECAGG_KEY];
    EVP_PKEY *k = x25519_new();
    int rc = k ? 0 : FMQ_ENOMEM;
    for (int i = 0; i < 2 && rc == 0; i++) /* OpenSSL refuses a low-order point's all-zero result */
        rc = agree(k, pub + i * FMQ_SECAGG_KEY, rid, "check", 0, 1, out) ? FMQ_EINVAL : 0;
    EVP_PKEY_free(k);
    OPENSSL_cleanse(out, sizeof out);
    return rc;
}

int fmq_secagg_server_add(struct fmq_secagg_server *s, int u, const uint32_t *y)
{
    if (u < 0 || u >= s->p.n || s->survived[u]) return FMQ_EINVAL;
    for (uint32_t i = 0; i < s->p.dim; i++) s->acc[i] += y[i];
    s->survived[u] = 1;
    return 0;
}

int fmq_secagg_server_answer(struct fmq_secagg_server *s, int u, const uint8_t *answer)
{
    uint8_t *row;
    if (u < 0 || u >= s->p.n || !s->survived[u] || s->answered[u]) return FMQ_EINVAL;
    row = s->shares + (size_t)u * (size_t)s->p.n * (1 + FMQ_SECAGG_KEY);
    memcpy(row, answer, (size_t)s->p.n * (1 + FMQ_SECAGG_KEY));
    for (int v = 0; v < s->p.n; v++) /* a share v gave u sits at x = u + 1: anything else is a
                                        lie (a repeated x would make the combination fail) */
        if (row[(size_t)v * (1 + FMQ_SECAGG_KEY)] != (uint8_t)(u + 1) || !s->shared[v])
            memset(row + (size_t)v * (1 + FMQ_SECAGG_KEY), 0, 1 + FMQ_SECAGG_KEY);
    s->answered[u] = 1;
    return 0;
}

int fmq_secagg_server_holders(const struct fmq_secagg_server *s, int v)
{
    int k = 0, n = s->p.n;
    for (int u = 0; u < n; u++)
        k +=
            s->answered[u] && s->shares[((size_t)u * (size_t)n + (size_t)v) * (1 + FMQ_SECAGG_KEY)];
    return k;
}

/* The secret of agent v from t survivors' answers; 1 when v was in nobody's mask set. */
static int recover(struct fmq_secagg_server *s, int v, uint8_t secret[FMQ_SECAGG_KEY])
{
    uint8_t xs[FMQ_SECAGG_MAX_N];
    const uint8_t *ys[FMQ_SECAGG_MAX_N];
    int k = 0, n = s->p.n;
    if (!s->shared[v]) return 1; /* in nobody's mask set */
    for (int u = 0; u < n && k < s->p.t; u++) {
        const uint8_t *a = s->shares + ((size_t)u * (size_t)n + (size_t)v) * (1 + FMQ_SECAGG_KEY);
        if (!s->answered[u] || !a[0]) continue;
        xs[k] = a[0];
        ys[k++] = a + 1;
    }
    if (k < s->p.t) return FMQ_ERANGE;
    return fmq_shamir_combine(xs, ys, k, FMQ_SECAGG_KEY, secret);
}

int fmq_secagg_server_sum(struct fmq_secagg_server *s, double *sum, int *count)
{
    uint8_t secret[FMQ_SECAGG_KEY], seed[FMQ_SECAGG_KEY], priv[FMQ_SECAGG_KEY];
    int n = s->p.n, alive = 0, answered = 0, rc = 0;
    EVP_PKEY *k = NULL;
    for (int u = 0; u < n; u++) alive += s->survived[u], answered += s->answered[u];
    s->unrecovered = -1;
    if (alive < s->p.t || answered < s->p.t) return FMQ_ERANGE;
    for (int v = 0; v < n && rc == 0; v++) {
        int r = recover(s, v, secret);
        if (r == 1) continue; /* never in a mask set: nothing to remove */
        if ((rc = r) != 0) {
            s->unrecovered = v;
            break;
        }
        if (s->survived[v]) { /* its self-mask */
            rc = prg_add(secret, -1, s->acc, s->p.dim);
            continue;
        }
        /* dropped after sharing: the pairwise masks the survivors made with it */
        memcpy(priv, secret, sizeof priv);
        if (!(k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, sizeof priv))) {
            rc = FMQ_EIO;
            break;
        }
        for (int u = 0; u < n && rc == 0; u++) {
            const uint8_t *a =
                s->shares + ((size_t)u * (size_t)n + (size_t)v) * (1 + FMQ_SECAGG_KEY);
            /* every survivor masked with v: the server routed v's shares to each of them (a
             * share that did not decrypt changes nothing there, fmq_secagg_client_mask) */
            (void)a;
            if (!s->survived[u]) continue;
            if ((rc = agree(k, s->pubs[u][1], s->p.round_id, "mask", v, u, seed)) == 0)
                rc = prg_add(seed, v > u ? -1 : 1, s->acc, s->p.dim);
        }
        EVP_PKEY_free(k);
        k = NULL;
    }
    OPENSSL_cleanse(secret, sizeof secret);
    OPENSSL_cleanse(seed, sizeof seed);
    OPENSSL_cleanse(priv, sizeof priv);
    if (rc) return rc;
    for (uint32_t i = 0; i < s->p.dim; i++)
        sum[i] = ldexp((double)(int32_t)s->acc[i], -s->p.frac_bits);
    *count = alive;
    return 0;
}

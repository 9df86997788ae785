/* Flow tokenizer for GIoT (vocabulary version 1): each flow becomes a fixed "sentence" of
 * FMQ_TOK_PER_FLOW field tokens, in this order: proto, service, conn_state, history flags,
 * responder port (exact for common IoT ports, a class otherwise), responder locality, log2
 * bucket of payload bytes, log2 bucket of packets, log10 bucket of duration, log10 bucket of the
 * gap since the device's previous flow. Each field owns a contiguous id range, so the model can
 * predict every field and an explanation can name each one (fmq_tok_describe). A device's
 * context is its last flows' sentences, one after another. The vocabulary is fixed by the code
 * and travels as its version number. */
#ifndef FMQ_TOKENIZE_H
#define FMQ_TOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/flow.h"

#define FMQ_TOK_VERSION 1
#define FMQ_TOK_PER_FLOW 10
#define FMQ_TOK_PAD 0
#define FMQ_TOK_BOS 1

enum fmq_tok_field {
    FMQ_TF_PROTO = 0,
    FMQ_TF_SERVICE,
    FMQ_TF_STATE,
    FMQ_TF_HISTORY,
    FMQ_TF_RPORT,
    FMQ_TF_LOCALITY,
    FMQ_TF_BYTES,
    FMQ_TF_PKTS,
    FMQ_TF_DURATION,
    FMQ_TF_GAP
};

/* Vocabulary size and each field's id range [base, base + count). */
int fmq_tok_vocab_size(void);
int fmq_tok_field_base(int field);
int fmq_tok_field_count(int field);
const char *fmq_tok_field_name(int field);
/* The field a token id belongs to, or -1 for PAD/BOS/out of range. */
int fmq_tok_field_of(int token);

/* Tokenizes one flow; prev_ts is the device's previous flow time (NAN when none). */
void fmq_tok_flow(const struct fmq_flow *f, double prev_ts, uint16_t out[FMQ_TOK_PER_FLOW]);

/* Human-readable value of a token ("responder port 23/telnet", "state S0", "bytes 1k-2k").
 * Returns the length written (truncated to cap). */
int fmq_tok_describe(int token, char *buf, size_t cap);

#endif

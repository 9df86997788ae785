/* One Zeek conn.log record (a "flow") and its text forms: setting a field from Zeek's text
 * encoding, parsing a Zeek-style JSON object (the sensor message), and writing one. Field names
 * are Zeek's own (id.orig_h, conn_state, ...). Unset numeric fields are -1 (counts) or NAN. */
#ifndef FMQ_FLOW_H
#define FMQ_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "fedmq/common.h"

enum { FMQ_LABEL_UNKNOWN = -1, FMQ_LABEL_BENIGN = 0, FMQ_LABEL_MALICIOUS = 1 };

struct fmq_flow {
    double ts;               /* connection start, seconds since the epoch */
    char uid[40];            /* Zeek connection uid */
    char orig_h[48];         /* originator address (the device) */
    int32_t orig_p;          /* originator port, -1 unset */
    char resp_h[48];         /* responder address */
    int32_t resp_p;          /* responder port, -1 unset */
    char proto[8];           /* tcp, udp, icmp */
    char service[32];        /* "" when Zeek wrote '-' */
    double duration;         /* seconds, NAN when unset */
    int64_t orig_bytes;      /* payload bytes from originator, -1 unset */
    int64_t resp_bytes;      /* payload bytes from responder, -1 unset */
    char conn_state[8];      /* S0, SF, REJ, ... */
    int8_t local_orig;       /* 1 T, 0 F, -1 unset */
    int8_t local_resp;       /* 1 T, 0 F, -1 unset */
    int64_t missed_bytes;    /* -1 unset */
    char history[64];        /* Zeek history letters */
    int64_t orig_pkts;       /* -1 unset */
    int64_t orig_ip_bytes;   /* -1 unset */
    int64_t resp_pkts;       /* -1 unset */
    int64_t resp_ip_bytes;   /* -1 unset */
    int label;               /* FMQ_LABEL_* */
    char detailed_label[48]; /* IoT-23 detailed label, "" for none */
};

/* Resets every field to unset. */
void fmq_flow_clear(struct fmq_flow *f);

/* Sets the field named `key` (Zeek's name) from its Zeek text form `val` of `len` bytes:
 * '-' means unset and '(empty)' an empty set. Unknown keys are ignored (returns 0) so newer Zeek
 * logs still read. Returns FMQ_EFORMAT with a reason in err for a value that does not parse or
 * does not fit, and never truncates silently. */
int fmq_flow_set(struct fmq_flow *f, const char *key, const char *val, size_t len, char *err,
                 size_t errlen);

/* Reads a label: its first word "benign" or "malicious" (any case) gives FMQ_LABEL_BENIGN or
 * FMQ_LABEL_MALICIOUS, anything else ("-", "Background", "Unknown", ...) FMQ_LABEL_UNKNOWN,
 * which means unlabelled: such a flow is scored but neither trained on nor counted in rates.
 * *detail is the offset of a detailed label written after the first word (the raw IoT-23 form
 * "Malicious   PartOfAHorizontalPortScan"), len when there is none. Returns *label. */
int fmq_flow_parse_label(const char *s, size_t len, int *label, size_t *detail);
/* 1 when key (n bytes) names a detailed-label column: detailed-label, detailed_label,
 * detailedlabel (Stratosphere's IDPS logs) or det_label (IoT-23 34-1). */
int fmq_flow_is_detail_key(const char *key, size_t n);

/* Parses one Zeek JSON object (as Zeek's LogAscii::use_json writes it) into f. Hostile input:
 * bounded nesting, every string checked, ts as number or ISO 8601. Requires ts, id.orig_h and
 * id.resp_h. Returns 0 or FMQ_EFORMAT with the reason (and byte offset) in err. */
int fmq_flow_from_json(const char *buf, size_t len, struct fmq_flow *f, char *err, size_t errlen);

/* 1 when buf is a batch: a JSON array, or a framed first object with more after it (even when
 * that object itself does not decode), else 0. */
int fmq_flow_json_batch(const char *buf, size_t len);

/* A batch in one message: calls each(ud, rec, n, k) for the k-th JSON object of buf, where buf
 * is objects one after another (NDJSON: separated by newlines or any whitespace) or a JSON array
 * of objects. The objects are only framed here (each decodes its own, so one bad record costs
 * only itself). Returns how many were passed on, or FMQ_EFORMAT with err (and the byte offset)
 * where the framing breaks: every object before it was passed on. */
int fmq_flow_json_each(const char *buf, size_t len,
                       void (*each)(void *ud, const char *rec, size_t n, size_t k), void *ud,
                       char *err, size_t errlen);

/* Checks that buf is exactly one JSON object (the same hostile-input rules: every string
 * checked, nesting bounded at 8, nothing after it) and copies the string value of its top-level
 * `key` into out (cap bytes; "" when absent or not a string). 0 or FMQ_EFORMAT with err. */
int fmq_json_object_check(const char *buf, size_t len, const char *key, char *out, size_t cap,
                          char *err, size_t errlen);

/* Writes f as one Zeek-style JSON object, omitting unset fields as Zeek does; labels only when
 * with_labels. Returns the length written, or FMQ_ETOOBIG if cap is too small. */
int fmq_flow_to_json(const struct fmq_flow *f, int with_labels, char *buf, size_t cap);

/* A capture's site name from its file name, as fedmq-replay and fedmq-sim name agents:
 * .../CTU-IoT-Malware-Capture-34-1.conn.log.labeled -> CTU-IoT-Malware-Capture-34-1 (up to the
 * first '.' or "conn"; MQTT wildcards and separators become '_'). */
void fmq_site_of(const char *path, char *out, size_t cap);

/* A sensor topic from a template with {site} and {device} (fedmq-replay, fedmq-zeek; default
 * sensors/{site}/{device}/conn); MQTT wildcards and '/' in the values become '_'. */
void fmq_sensor_topic(const char *tpl, const char *site, const char *dev, char *out, size_t cap);

#endif

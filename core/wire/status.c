/* An agent's status and last will as JSON (schemas/wire.md "status"), which dashboards read as
 * they are (Home Assistant, Node-RED, Grafana's MQTT source: JSON.parse). Written and parsed
 * with cJSON; the decoder is a hostile-input one: a size bound before parsing, every field's
 * type and range checked, ids checked as topic levels. A msgpack status (agents before this
 * format) is still read (wire.c). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fedmq/common.h"
#include "fedmq/wire.h"

/* A status is about 250 bytes; the broker plugin refuses more than max_status_bytes (1 KiB). */
#define STATUS_MAX_BYTES 4096
/* Counts are JSON numbers: exact up to 2^53. */
#define EXACT_MAX 9007199254740992.0

int fmq_wire_encode_status(const struct fmq_status *s, struct fmq_buf *out)
{
    cJSON *o;
    char *text;
    int rc = FMQ_ENOMEM;

    if (!fmq_id_valid(s->agent) || !fmq_id_valid(s->task) || !isfinite(s->ts)) return FMQ_EINVAL;
    if (!(o = cJSON_CreateObject())) return FMQ_ENOMEM;
    if (cJSON_AddNumberToObject(o, "v", FMQ_WIRE_VERSION) &&
        cJSON_AddStringToObject(o, "type", "status") &&
        cJSON_AddStringToObject(o, "agent", s->agent) &&
        cJSON_AddStringToObject(o, "task", s->task) &&
        cJSON_AddStringToObject(o, "state", s->state) &&
        cJSON_AddNumberToObject(o, "model", (double)s->model_version) &&
        cJSON_AddNumberToObject(o, "flows", (double)s->flows) &&
        cJSON_AddNumberToObject(o, "labelled", (double)s->labelled) &&
        cJSON_AddNumberToObject(o, "buffered", (double)s->buffered) &&
        cJSON_AddNumberToObject(o, "alerts", (double)s->alerts) &&
        cJSON_AddNumberToObject(o, "bad", (double)s->bad) &&
        (s->calib[0] ? cJSON_AddStringToObject(o, "calib", s->calib) != NULL
                     : cJSON_AddNullToObject(o, "calib") != NULL) &&
        cJSON_AddNumberToObject(o, "ts", s->ts) && (text = cJSON_PrintUnformatted(o))) {
        rc = fmq_buf_set(out, text, strlen(text));
        cJSON_free(text);
    }
    cJSON_Delete(o);
    return rc;
}

static int bad(char *err, size_t errlen, int rc, const char *field, const char *what)
{
    snprintf(err, errlen, "status.%s: %s", field, what);
    return rc;
}

static int get_str(const cJSON *o, const char *key, char *out, size_t cap, int is_id, int nullable,
                   char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    size_t n;
    if (!v) {
        if (nullable) return out[0] = 0, 0;
        return bad(err, errlen, FMQ_EFORMAT, key, "missing");
    }
    if (nullable && cJSON_IsNull(v)) return out[0] = 0, 0;
    if (!cJSON_IsString(v)) return bad(err, errlen, FMQ_ETYPE, key, "not a string");
    if ((n = strlen(v->valuestring)) >= cap) return bad(err, errlen, FMQ_ERANGE, key, "too long");
    memcpy(out, v->valuestring, n + 1);
    if (is_id && !fmq_id_valid(out)) return bad(err, errlen, FMQ_EFORMAT, key, "not a valid id");
    return 0;
}

static int get_count(const cJSON *o, const char *key, uint64_t *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    double d;
    if (!v) return bad(err, errlen, FMQ_EFORMAT, key, "missing");
    if (!cJSON_IsNumber(v)) return bad(err, errlen, FMQ_ETYPE, key, "not a number");
    d = v->valuedouble;
    if (!(d >= 0 && d <= EXACT_MAX) || d != floor(d))
        return bad(err, errlen, FMQ_ERANGE, key, "not a whole number in [0, 2^53]");
    *out = (uint64_t)d;
    return 0;
}

/* wire.c: the msgpack form */
int fmq_wire_decode_status_msgpack(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                                   struct fmq_status *s, char *err, size_t errlen);

int fmq_wire_decode_status(struct fmq_wire_dec *d, const uint8_t *buf, size_t len,
                           struct fmq_status *s, char *err, size_t errlen)
{
    cJSON *o;
    const cJSON *v;
    const char *end = NULL;
    uint64_t ver = 0;
    int rc;

    if (len == 0 || buf[0] != '{')
        return fmq_wire_decode_status_msgpack(d, buf, len, s, err, errlen);
    if (len > STATUS_MAX_BYTES) {
        snprintf(err, errlen, "status: %zu bytes exceeds the %d byte limit", len, STATUS_MAX_BYTES);
        return FMQ_ETOOBIG;
    }
    if (memchr(buf, 0, len)) return bad(err, errlen, FMQ_EFORMAT, "json", "holds a NUL byte");
    o = cJSON_ParseWithLengthOpts((const char *)buf, len, &end, 0);
    if (!o) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(err, errlen, "status: not JSON (near byte %ld of %zu)",
                 at ? (long)(at - (const char *)buf) : 0L, len);
        return FMQ_EFORMAT;
    }
    if (end && (size_t)(end - (const char *)buf) < len) {
        for (const char *p = end; p < (const char *)buf + len; p++)
            if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
                cJSON_Delete(o);
                return bad(err, errlen, FMQ_EFORMAT, "json", "something after the object");
            }
    }
    memset(s, 0, sizeof *s);
    if (!cJSON_IsObject(o)) {
        rc = bad(err, errlen, FMQ_ETYPE, "json", "not an object");
    } else if ((rc = get_count(o, "v", &ver, err, errlen)) != 0) {
    } else if (ver != FMQ_WIRE_VERSION) {
        rc = bad(err, errlen, FMQ_EVERSION, "v", "a version this build does not read");
    } else if (!(v = cJSON_GetObjectItemCaseSensitive(o, "type")) || !cJSON_IsString(v) ||
               strcmp(v->valuestring, "status") != 0) {
        rc = bad(err, errlen, FMQ_ETYPE, "type", "not \"status\"");
    } else if ((rc = get_str(o, "agent", s->agent, sizeof s->agent, 1, 0, err, errlen)) ||
               (rc = get_str(o, "task", s->task, sizeof s->task, 1, 0, err, errlen)) ||
               (rc = get_str(o, "state", s->state, sizeof s->state, 0, 0, err, errlen)) ||
               (rc = get_count(o, "model", &s->model_version, err, errlen)) ||
               (rc = get_count(o, "flows", &s->flows, err, errlen)) ||
               (rc = get_count(o, "labelled", &s->labelled, err, errlen)) ||
               (rc = get_count(o, "buffered", &s->buffered, err, errlen)) ||
               (rc = get_count(o, "alerts", &s->alerts, err, errlen)) ||
               (rc = get_count(o, "bad", &s->bad, err, errlen)) ||
               (rc = get_str(o, "calib", s->calib, sizeof s->calib, 0, 1, err, errlen))) {
    } else if (!(v = cJSON_GetObjectItemCaseSensitive(o, "ts")) || !cJSON_IsNumber(v) ||
               !isfinite(v->valuedouble)) {
        rc = bad(err, errlen, FMQ_ETYPE, "ts", "missing or not a finite number");
    } else
        s->ts = v->valuedouble;
    cJSON_Delete(o);
    return rc;
}

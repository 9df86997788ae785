/* Structural pre-check of msgpack bytes (format per github.com/msgpack/msgpack/blob/master/spec.md)
 * before msgpack-c sees them. msgpack-c's unpacker reserves memory from declared array, map, str
 * and bin lengths before it has the bytes, so a few hostile bytes can make it allocate hundreds of
 * MiB. Here every declared length is checked against the bytes actually left (each array element
 * or map entry needs at least one byte), nesting is bounded, ext types are refused, and the object
 * must end exactly at len. */
#include "fedmq/common.h"
#include "fedmq/wire.h"

struct cur {
    const uint8_t *b;
    size_t len, pos;
};

static int need(struct cur *c, size_t n)
{
    return c->len - c->pos >= n;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 8) | p[i];
    return v;
}

static int walk(struct cur *c, int depth, int max_depth)
{
    uint8_t t;
    uint64_t n = 0;
    int kind = 0; /* 0 scalar skip, 1 array, 2 map, 3 raw bytes */
    size_t hdr = 1;

    if (depth > max_depth || !need(c, 1)) return FMQ_EFORMAT;
    t = c->b[c->pos];
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3)
        n = 0;
    else if ((t & 0xf0) == 0x80)
        kind = 2, n = t & 0x0f;
    else if ((t & 0xf0) == 0x90)
        kind = 1, n = t & 0x0f;
    else if ((t & 0xe0) == 0xa0)
        kind = 3, n = t & 0x1f;
    else
        switch (t) {
        case 0xc4:
        case 0xd9:
            kind = 3, hdr = 2;
            break; /* bin8, str8 */
        case 0xc5:
        case 0xda:
            kind = 3, hdr = 3;
            break;
        case 0xc6:
        case 0xdb:
            kind = 3, hdr = 5;
            break;
        case 0xcc:
        case 0xd0:
            hdr = 2;
            break;
        case 0xcd:
        case 0xd1:
            hdr = 3;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            hdr = 5;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            hdr = 9;
            break;
        case 0xdc:
            kind = 1, hdr = 3;
            break;
        case 0xdd:
            kind = 1, hdr = 5;
            break;
        case 0xde:
            kind = 2, hdr = 3;
            break;
        case 0xdf:
            kind = 2, hdr = 5;
            break;
        default:
            return FMQ_EFORMAT; /* 0xc1 never used; ext types not accepted */
        }
    if (!need(c, hdr)) return FMQ_EFORMAT;
    if (hdr > 1 && kind != 0) n = be(c->b + c->pos + 1, (int)hdr - 1);
    c->pos += hdr;
    if (kind == 0) return 0;
    if (kind == 3) {
        if (!need(c, n)) return FMQ_EFORMAT;
        c->pos += n;
        return 0;
    }
    if (kind == 2) {
        if (n > (c->len - c->pos) / 2) return FMQ_EFORMAT;
        n *= 2;
    } else if (n > c->len - c->pos)
        return FMQ_EFORMAT;
    for (uint64_t i = 0; i < n; i++)
        if (walk(c, depth + 1, max_depth) != 0) return FMQ_EFORMAT;
    return 0;
}

int fmq_wire_check(const uint8_t *buf, size_t len, int max_depth, size_t *where)
{
    struct cur c = {buf, len, 0};
    int rc;

    if (len > FMQ_WIRE_MAX_PAYLOAD) {
        if (where) *where = 0;
        return FMQ_ETOOBIG;
    }
    rc = walk(&c, 0, max_depth);
    if (where) *where = c.pos;
    if (rc != 0) return rc;
    return c.pos == len ? 0 : FMQ_EFORMAT;
}

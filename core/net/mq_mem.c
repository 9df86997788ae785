/* In-process MQTT bus for mem:// URIs (see mq_mem.h). One mutex guards the registry of buses;
 * client queues have their own locks (taken inside it, never the other way round). Retained
 * messages live in an array searched linearly: a fleet has a few per agent. */
#include "mq_mem.h"

#include "fedmq/common.h"
#include "fedmq/mq.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct retained {
    char *topic;
    void *payload;
    size_t len;
};

struct fmq_mem_bus {
    char name[64];
    struct fmq_mq **clients; /* borrowed */
    size_t nclients, cap;
    struct retained *kept; /* owned */
    size_t nkept, kept_cap;
    struct fmq_mem_bus *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fmq_mem_bus *buses;

struct fmq_mem_bus *fmq_mem_attach(const char *name, struct fmq_mq *mq)
{
    struct fmq_mem_bus *b;
    pthread_mutex_lock(&reg_lock);
    for (b = buses; b && strcmp(b->name, name) != 0; b = b->next) {
    }
    if (!b && (b = calloc(1, sizeof *b)) != NULL) {
        snprintf(b->name, sizeof b->name, "%s", name);
        b->next = buses;
        buses = b;
    }
    if (b && b->nclients == b->cap) {
        size_t n = b->cap ? 2 * b->cap : 16;
        struct fmq_mq **c = realloc(b->clients, n * sizeof *c);
        if (!c)
            b = NULL;
        else
            b->clients = c, b->cap = n;
    }
    if (b) b->clients[b->nclients++] = mq;
    pthread_mutex_unlock(&reg_lock);
    return b;
}

void fmq_mem_detach(struct fmq_mem_bus *b, struct fmq_mq *mq)
{
    struct fmq_mem_bus **pp;
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < b->nclients; i++)
        if (b->clients[i] == mq) {
            memmove(b->clients + i, b->clients + i + 1, (b->nclients - i - 1) * sizeof *b->clients);
            b->nclients--;
            break;
        }
    if (b->nclients == 0) {
        for (pp = &buses; *pp && *pp != b; pp = &(*pp)->next) {
        }
        if (*pp) *pp = b->next;
        for (size_t i = 0; i < b->nkept; i++) {
            free(b->kept[i].topic);
            free(b->kept[i].payload);
        }
        free(b->kept);
        free(b->clients);
        free(b);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* Replaces (or with n == 0 removes) the retained message on topic; lock held. */
static int keep(struct fmq_mem_bus *b, const char *topic, const void *p, size_t n)
{
    size_t i;
    void *copy = NULL;
    for (i = 0; i < b->nkept && strcmp(b->kept[i].topic, topic) != 0; i++) {
    }
    if (n && !(copy = malloc(n))) return FMQ_ENOMEM;
    if (n) memcpy(copy, p, n);
    if (i < b->nkept) {
        free(b->kept[i].payload);
        if (!n) {
            free(b->kept[i].topic);
            b->kept[i] = b->kept[--b->nkept];
            return 0;
        }
        b->kept[i].payload = copy;
        b->kept[i].len = n;
        return 0;
    }
    if (!n) return 0;
    if (b->nkept == b->kept_cap) {
        size_t c = b->kept_cap ? 2 * b->kept_cap : 16;
        struct retained *r = realloc(b->kept, c * sizeof *r);
        if (!r) {
            free(copy);
            return FMQ_ENOMEM;
        }
        b->kept = r, b->kept_cap = c;
    }
    if (!(b->kept[b->nkept].topic = strdup(topic))) {
        free(copy);
        return FMQ_ENOMEM;
    }
    b->kept[b->nkept].payload = copy;
    b->kept[b->nkept++].len = n;
    return 0;
}

int fmq_mem_publish(struct fmq_mem_bus *b, const char *topic, const void *p, size_t n, int retained)
{
    int rc = 0;
    pthread_mutex_lock(&reg_lock);
    if (retained) rc = keep(b, topic, p, n);
    for (size_t i = 0; i < b->nclients; i++) /* a full queue drops for that client alone */
        fmq_mq_deliver(b->clients[i], NULL, topic, p, n, 0);
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

void fmq_mem_send_retained(struct fmq_mem_bus *b, struct fmq_mq *mq, const char *filter)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < b->nkept; i++)
        fmq_mq_deliver(mq, filter, b->kept[i].topic, b->kept[i].payload, b->kept[i].len, 1);
    pthread_mutex_unlock(&reg_lock);
}

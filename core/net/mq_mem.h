/* In-process MQTT bus for mem://NAME URIs (internal to core/net). fedmq-sim runs a coordinator
 * and many agents in one process over it, through the same fmq_mq calls as over a broker: topic
 * filters with + and #, retained messages (an empty payload clears one), delivery in publish
 * order. No QoS, sessions or wills: nothing is ever lost in-process. */
#ifndef FMQ_NET_MQ_MEM_H
#define FMQ_NET_MQ_MEM_H

#include <stddef.h>

struct fmq_mq;
struct fmq_mem_bus;

/* Joins (creating it if new) the bus NAME; NULL when out of memory or too many clients. */
struct fmq_mem_bus *fmq_mem_attach(const char *name, struct fmq_mq *mq);
/* Leaves it; the last client to leave frees the bus and its retained messages. */
void fmq_mem_detach(struct fmq_mem_bus *b, struct fmq_mq *mq);
/* Delivers to every attached client subscribed to topic; keeps it when retained. */
int fmq_mem_publish(struct fmq_mem_bus *b, const char *topic, const void *p, size_t n,
                    int retained);
/* Delivers the retained messages matching filter to mq (a new subscription). */
void fmq_mem_send_retained(struct fmq_mem_bus *b, struct fmq_mq *mq, const char *filter);

/* In mq.c: queues a copy for mq when one of its filters (or `filter`, if given) matches.
 * Returns 0, or FMQ_EFULL when its inbound queue is at its cap. */
int fmq_mq_deliver(struct fmq_mq *mq, const char *filter, const char *topic, const void *p,
                   size_t n, int retained);

#endif

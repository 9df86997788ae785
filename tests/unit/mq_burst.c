/* Test helper for tests/integration/test_publish.py: publishes COUNT QoS 0 messages of SIZE
 * bytes to TOPIC as fast as fmq_mq_publish takes them, with Paho's unsent buffer set to BUFFER
 * messages (the default 1000 is only reached on a loaded machine; a small one makes the burst
 * outrun the socket on any machine), waits up to FLUSH seconds for Paho to send them, and
 * prints the client's counters as one JSON line. With STOP_PID it sends that process (the
 * broker) SIGSTOP once connected, so the burst meets a broker that stopped reading.
 * Usage: fmq_mq_burst URI TOPIC COUNT SIZE BUFFER FLUSH [STOP_PID] */
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>

#include "fedmq/common.h"
#include "fedmq/mq.h"

int main(int argc, char **argv)
{
    struct fmq_mq_opts o;
    struct fmq_mq *mq;
    struct fmq_mq_stats st;
    static char body[65536];
    long count, size;
    double t0, dt;

    if ((argc != 7 && argc != 8) || (count = atol(argv[3])) < 1 || (size = atol(argv[4])) < 1 ||
        size > (long)sizeof body) {
        fprintf(stderr, "usage: fmq_mq_burst URI TOPIC COUNT SIZE BUFFER FLUSH [STOP_PID]\n");
        return 2;
    }
    fmq_mq_opts_default(&o);
    o.uri = argv[1];
    o.client_id = "fmq-mq-burst";
    o.max_buffered = atoi(argv[5]);
    memset(body, 'x', (size_t)size);
    if (fmq_mq_create(&mq, &o) != 0 || fmq_mq_connect(mq, 10.0) != 0) {
        fprintf(stderr, "fmq_mq_burst: cannot connect to %s\n", argv[1]);
        return 1;
    }
    if (argc == 8 && kill((pid_t)atol(argv[7]), SIGSTOP) != 0) {
        perror("fmq_mq_burst: SIGSTOP");
        return 1;
    }
    t0 = fmq_mono();
    for (long i = 0; i < count; i++) fmq_mq_publish(mq, argv[2], body, (size_t)size, 0, 0);
    dt = fmq_mono() - t0;
    fmq_mq_flush(mq, atof(argv[6]));
    fmq_mq_get_stats(mq, &st);
    printf("{\"handed\":%llu,\"sent\":%llu,\"waits\":%llu,\"dropped\":%llu,\"publish_s\":%.3f}\n",
           (unsigned long long)st.msgs_out, (unsigned long long)st.acked,
           (unsigned long long)st.publish_waits, (unsigned long long)st.publish_dropped, dt);
    fmq_mq_destroy(mq);
    return 0;
}

/* Config parsing: files with comments, flags overriding files, booleans, strict numbers, and
 * errors that name the line. */
#include <stdio.h>
#include <string.h>

#include "fedmq/config.h"
#include "fedmq/common.h"
#include "test_util.h"

struct cfg {
    long rounds;
    double lr;
    int flag;
    char name[16];
    int positional;
};

static const char *const bools[] = {"with_labels", NULL};

static int on_kv(void *ud, const char *k, const char *v, char *err, size_t errlen)
{
    struct cfg *c = ud;
    if (!*k) return c->positional++, 0;
    if (!strcmp(k, "rounds")) return fmq_parse_long(v, 1, 1000, &c->rounds);
    if (!strcmp(k, "lr")) return fmq_parse_double(v, 0, 1, &c->lr);
    if (!strcmp(k, "name")) return fmq_config_str(c->name, sizeof c->name, v);
    if (!strcmp(k, "with_labels")) return fmq_parse_bool(v, &c->flag);
    snprintf(err, errlen, "unknown setting");
    return FMQ_EINVAL;
}

static void test_file_and_flags(void)
{
    char path[] = "/tmp/fmq_cfg_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct cfg c = {0};
    char *argv[] = {"prog",          "--config", path,       "--rounds", "7",
                    "--with-labels", "a.log",    "--lr=0.5", NULL};
    fprintf(f, "# comment\nrounds = 3   # trailing\n\n  lr=0.25\nname = site-a\n");
    fclose(f);
    CU_ASSERT_EQUAL(fmq_config_args(8, argv, bools, on_kv, &c), 0);
    CU_ASSERT_EQUAL(c.rounds, 7);
    CU_ASSERT_DOUBLE_EQUAL(c.lr, 0.5, 0);
    CU_ASSERT_STRING_EQUAL(c.name, "site-a");
    CU_ASSERT_EQUAL(c.flag, 1);
    CU_ASSERT_EQUAL(c.positional, 1);
    {
        char *argv2[] = {"prog", "--with-labels=no", NULL};
        CU_ASSERT_EQUAL(fmq_config_args(2, argv2, bools, on_kv, &c), 0);
        CU_ASSERT_EQUAL(c.flag, 0);
    }
    remove(path);
}

static void test_errors(void)
{
    char path[] = "/tmp/fmq_cfg_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    struct cfg c = {0};
    char *bad1[] = {"prog", "--rounds", "0"};
    char *bad2[] = {"prog", "--lr", "0.1x"};
    char *bad3[] = {"prog", "--nope", "1"};
    char *bad4[] = {"prog", "--rounds"};
    long l;
    fprintf(f, "rounds = 3\nthis line has no equals\n");
    fclose(f);
    CU_ASSERT_EQUAL(fmq_config_file(path, on_kv, &c), FMQ_EFORMAT);
    CU_ASSERT_EQUAL(c.rounds, 3);
    CU_ASSERT(fmq_config_args(3, bad1, bools, on_kv, &c) < 0);
    CU_ASSERT(fmq_config_args(3, bad2, bools, on_kv, &c) < 0);
    CU_ASSERT(fmq_config_args(3, bad3, bools, on_kv, &c) < 0);
    CU_ASSERT(fmq_config_args(2, bad4, bools, on_kv, &c) < 0);
    CU_ASSERT_EQUAL(fmq_config_file("/nonexistent", on_kv, &c), FMQ_EIO);
    CU_ASSERT_EQUAL(fmq_config_str(c.name, 4, "toolong"), FMQ_ETOOBIG);
    CU_ASSERT_EQUAL(fmq_parse_long("12", 0, 10, &l), FMQ_ERANGE);
    CU_ASSERT_EQUAL(fmq_parse_long("", 0, 10, &l), FMQ_EINVAL);
    remove(path);
}

/* --help and --version are found anywhere on the command line, and only as whole words. */
static void test_has_flag(void)
{
    char *argv[] = {"prog", "--id", "a", "--version"};
    char *none[] = {"prog", "--versions", "--id", "-h1"};
    CU_ASSERT_EQUAL(fmq_config_has_flag(4, argv, "--version", "-V"), 1);
    CU_ASSERT_EQUAL(fmq_config_has_flag(4, argv, "--help", "-h"), 0);
    CU_ASSERT_EQUAL(fmq_config_has_flag(4, none, "--version", "-V"), 0);
    CU_ASSERT_EQUAL(fmq_config_has_flag(4, none, "--help", "-h"), 0);
    CU_ASSERT_EQUAL(fmq_config_has_flag(1, argv, "prog", NULL), 0); /* argv[0] is not a flag */
}

int init_config_tests(void)
{
    static const struct fmq_test t[] = {{"file and flags", test_file_and_flags},
                                        {"errors", test_errors},
                                        {"has flag", test_has_flag},
                                        {NULL, NULL}};
    return fmq_add_suite("config", t);
}

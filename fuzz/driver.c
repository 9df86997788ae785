/* Regression driver for ordinary builds: runs a fuzz target's LLVMFuzzerTestOneInput over every
 * file named on the command line or found in the directories named, and prints how many. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static long run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long n;
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) LLVMFuzzerTestOneInput(buf, (size_t)n);
    free(buf);
    fclose(f);
    return 1;
}

int main(int argc, char **argv)
{
    long runs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        DIR *d;
        struct dirent *e;
        if (stat(argv[i], &st) != 0) continue;
        if (!S_ISDIR(st.st_mode)) {
            runs += run_file(argv[i]);
            continue;
        }
        if (!(d = opendir(argv[i]))) continue;
        while ((e = readdir(d))) {
            char p[4096];
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", argv[i], e->d_name);
            runs += run_file(p);
        }
        closedir(d);
    }
    printf("%s: %ld inputs, no crash\n", argv[0], runs);
    return 0;
}

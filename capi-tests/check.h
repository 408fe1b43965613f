/* Helpers of the C tests: CHECK fails the program with the line, the expression and errno. */
#ifndef CHECK_H
#define CHECK_H
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s (errno %d: %s)\n", __FILE__, __LINE__, \
              #cond, errno, strerror(errno));                                         \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)

/* A call that must fail with errno e. */
#define CHECK_ERR(call, e)                                                            \
  do {                                                                                \
    errno = 0;                                                                        \
    long r_ = (long)(call);                                                           \
    if (r_ != -1 || errno != (e)) {                                                   \
      fprintf(stderr, "%s:%d: %s returned %ld errno %d (%s), wanted -1 errno %d (%s)\n", \
              __FILE__, __LINE__, #call, r_, errno, strerror(errno), (e), strerror(e)); \
      exit(1);                                                                        \
    }                                                                                 \
  } while (0)
#endif

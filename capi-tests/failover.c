/* A pool user's session failing over between two TCP-like (SOCK_STREAM, rsp_accept) ping-pong
 * PEs, with the newest cookie arriving at the new PE as a Cookie Echo. PE A runs in a forked
 * child (which must initialise the library itself: the parent's is not usable after fork)
 * and is killed mid-session; PE B runs in a thread of the parent beside the pool user. */
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rserpool.h"
#include "check.h"

static const char POOL[] = "CFailoverPool";
#define PPID 33

static struct rsp_info info;

/* Serves one session after another: "ping N" gets the cookie "<PP-TD1>N" and "pong N".
 * A Cookie Echo is printed as "echo <cookie>" (to fd out). */
static void serve(int pe, int out) {
  for (;;) {
    int s = rsp_accept(pe, -1);
    if (s < 0) {
      CHECK(errno == EBADF); /* the PE socket was closed */
      return;
    }
    char buf[512];
    struct rsp_sndrcvinfo ri;
    int flags;
    for (;;) {
      ssize_t n = rsp_recvmsg(s, buf, sizeof(buf) - 1, &ri, &flags, -1);
      if (n <= 0) break;
      buf[n] = 0;
      if (flags & MSG_RSERPOOL_COOKIE_ECHO) {
        dprintf(out, "echo %s\n", buf);
        continue;
      }
      CHECK(ri.rinfo_ppid == htonl(PPID));
      CHECK(n > 5 && memcmp(buf, "ping ", 5) == 0);
      /* The cookie first: on the same ordered stream, it has reached the PU when the Pong
       * has, so the newest cookie is the one of the last Pong it read. */
      char reply[64], cookie[64];
      int len = snprintf(cookie, sizeof(cookie), "<PP-TD1>%s", buf + 5);
      CHECK(rsp_send_cookie(s, (const unsigned char*)cookie, (size_t)len, 0, -1) == len);
      len = snprintf(reply, sizeof(reply), "pong %s", buf + 5);
      CHECK(rsp_sendmsg(s, reply, (size_t)len, 0, 0, htonl(PPID), 0, 0, 0, -1) == len);
    }
    CHECK(rsp_close(s) == 0);
  }
}

static int make_pe(uint32_t load) {
  int pe = rsp_socket(0, SOCK_STREAM, IPPROTO_SCTP);
  CHECK(pe >= 0);
  struct rsp_loadinfo li;
  memset(&li, 0, sizeof(li));
  li.rli_policy = PPT_LEASTUSED;
  li.rli_load = load;
  CHECK(rsp_register(pe, (const unsigned char*)POOL, strlen(POOL), &li, 30000, 0) == 0);
  CHECK(rsp_listen(pe, 10) == 0);
  return pe;
}

static int echo_pipe[2];
static int pe_b;

static void* run_b(void* arg) {
  (void)arg;
  serve(pe_b, echo_pipe[1]);
  return NULL;
}

/* Sends "ping n"; returns 1 with "pong n" received, 0 when a failover notification came. */
static int ping(int pu, int n) {
  char buf[512];
  int len = snprintf(buf, sizeof(buf), "ping %d", n);
  if (rsp_sendmsg(pu, buf, (size_t)len, 0, 0, htonl(PPID), 0, 0, 0, -1) < 0) {
    CHECK(errno == EIO);
  }
  for (;;) {
    struct rsp_sndrcvinfo ri;
    int flags = 0;
    ssize_t r = rsp_recvmsg(pu, buf, sizeof(buf) - 1, &ri, &flags, 30000);
    CHECK(r > 0);
    if (flags & MSG_RSERPOOL_NOTIFICATION) {
      const union rserpool_notification* no = (const union rserpool_notification*)buf;
      if (no->rn_header.rn_type == RSERPOOL_FAILOVER &&
          no->rn_failover.rf_state == RSERPOOL_FAILOVER_NECESSARY) {
        return 0;
      }
      continue;
    }
    buf[r] = 0;
    char want[64];
    snprintf(want, sizeof(want), "pong %d", n);
    CHECK(strcmp(buf, want) == 0);
    return 1;
  }
}

int main(int argc, char** argv) {
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) CHECK(rsp_initarg(&info, argv[i]) == 1);
  CHECK(rsp_initialize(&info) == 0);

  int ready[2];
  CHECK(pipe(ready) == 0);
  pid_t a = fork();
  CHECK(a >= 0);
  if (a == 0) {
    /* The parent's library does not work here; a library of the child's own does. */
    CHECK_ERR(rsp_socket(0, SOCK_STREAM, IPPROTO_SCTP), EACCES);
    CHECK(rsp_initialize(&info) == 0);
    int pe = make_pe(0); /* least used: the PU picks A first */
    CHECK(write(ready[1], "r", 1) == 1);
    serve(pe, 1);
    _exit(0);
  }
  /* Only the child writes: if it dies first, read sees the end instead of waiting. */
  CHECK(close(ready[1]) == 0);
  char c;
  CHECK(read(ready[0], &c, 1) == 1);

  CHECK(pipe(echo_pipe) == 0);
  pe_b = make_pe(0x40000000);
  pthread_t tb;
  CHECK(pthread_create(&tb, NULL, run_b, NULL) == 0);

  int pu = rsp_socket(0, SOCK_STREAM, IPPROTO_SCTP);
  CHECK(pu >= 0);
  struct rserpool_session_parameters sp;
  memset(&sp, 0, sizeof(sp));
  sp.sp_rto_max = 500;
  sp.sp_hbinterval = 300;
  CHECK(rsp_update_session_parameters(pu, &sp) == 0);
  CHECK(sp.sp_rto_max == 500 && sp.sp_hbinterval == 300 && sp.sp_rto_initial > 0);
  CHECK(rsp_connect(pu, (const unsigned char*)POOL, strlen(POOL), 0) == 0);
  uint32_t first = 0;
  CHECK(rsp_getpeername(pu, NULL, NULL, &first) == 0);
  int n = 1;
  for (; n <= 3; n++) CHECK(ping(pu, n) == 1);
  CHECK(rsp_has_cookie(pu) == 1);

  /* PE A dies. The PU notices, fails over on demand (reporting A) to B. */
  CHECK(kill(a, SIGKILL) == 0);
  CHECK(waitpid(a, NULL, 0) == a);
  int gaps = 0;
  while (ping(pu, n) == 1) {
    n++;
    CHECK(++gaps < 100);
  }
  CHECK(rsp_forcefailover(pu, FFF_UNREACHABLE, 0) == 0);
  /* The completion notification is queued for the application. */
  char buf[512];
  struct rsp_sndrcvinfo ri;
  int flags = 0;
  ssize_t r = rsp_recvmsg(pu, buf, sizeof(buf), &ri, &flags, 20000);
  CHECK(r > 0 && (flags & MSG_RSERPOOL_NOTIFICATION));
  const union rserpool_notification* no = (const union rserpool_notification*)buf;
  CHECK(no->rn_header.rn_type == RSERPOOL_FAILOVER);
  CHECK(no->rn_failover.rf_state == RSERPOOL_FAILOVER_COMPLETE);
  CHECK(no->rn_failover.rf_has_cookie == 1);
  uint32_t second = 0;
  CHECK(rsp_getpeername(pu, NULL, NULL, &second) == 0);
  CHECK(second != first);

  /* B got the newest cookie first, then serves the session. */
  char line[128];
  size_t got = 0;
  while (got == 0 || line[got - 1] != '\n') {
    CHECK(read(echo_pipe[0], line + got, 1) == 1);
    got++;
    CHECK(got < sizeof(line));
  }
  line[got] = 0;
  char want[64];
  snprintf(want, sizeof(want), "echo <PP-TD1>%d\n", n - 1);
  printf("new PE got: %s", line);
  CHECK(strcmp(line, want) == 0);
  CHECK(ping(pu, n) == 1);

  CHECK(rsp_close(pu) == 0);
  /* Closing PE B ends its rsp_accept in the other thread. */
  CHECK(rsp_close(pe_b) == 0);
  CHECK(pthread_join(tb, NULL) == 0);
  rsp_cleanup();
  rsp_freeinfo(&info);
  printf("failover: ok, %d pong(s) after the kill before the failover notice\n", gaps);
  return 0;
}

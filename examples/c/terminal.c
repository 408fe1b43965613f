/* A terminal pool user (as RSPLIB's rspterminal): sends each line of standard input to the
 * pool, prints what comes back, and fails over when the PE is lost. At the end of its input
 * it waits up to -wait=MS (default 2000) for the last answers.
 *   terminal [-poolhandle=EchoPool] [-wait=MS] [rsplib options] */
#include <arpa/inet.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rserpool.h>

int main(int argc, char** argv) {
  const char* pool = "EchoPool";
  int wait_ms = 2000;
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "-poolhandle=", 12)) pool = argv[i] + 12;
    else if (!strncmp(argv[i], "-wait=", 6)) wait_ms = atoi(argv[i] + 6);
    else if (!rsp_initarg(&info, argv[i])) {
      fprintf(stderr, "terminal: bad argument %s\n", argv[i]);
      return 1;
    }
  }
  if (rsp_initialize(&info) < 0) { perror("rsp_initialize"); return 1; }
  int sd = rsp_socket(0, SOCK_STREAM, IPPROTO_SCTP);
  if (sd < 0 || rsp_connect(sd, (const unsigned char*)pool, strlen(pool), 0) < 0) {
    perror("terminal: connect");
    return 1;
  }
  int input_open = 1;
  char buf[65536];
  for (;;) {
    struct pollfd p[2] = {{.fd = sd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
    int r = rsp_poll(p, input_open ? 2 : 1, input_open ? -1 : wait_ms);
    if (r == 0) break; /* input done and nothing more came */
    if (r < 0) { perror("rsp_poll"); break; }
    if (input_open && (p[1].revents & (POLLIN | POLLHUP))) {
      ssize_t n = rsp_read(STDIN_FILENO, buf, sizeof(buf));
      if (n <= 0) {
        input_open = 0;
      } else if (rsp_sendmsg(sd, buf, (size_t)n, 0, 0, 0, 0, 0, 0, -1) < 0) {
        perror("terminal: send");
      }
    }
    if (p[0].revents & POLLIN) {
      struct rsp_sndrcvinfo ri;
      int flags = 0;
      ssize_t n = rsp_recvmsg(sd, buf, sizeof(buf), &ri, &flags, 0);
      if (n <= 0) continue;
      if (flags & MSG_RSERPOOL_NOTIFICATION) {
        const union rserpool_notification* no = (const void*)buf;
        if (no->rn_header.rn_type == RSERPOOL_FAILOVER &&
            no->rn_failover.rf_state == RSERPOOL_FAILOVER_NECESSARY) {
          fprintf(stderr, "terminal: PE lost, failing over\n");
          if (rsp_forcefailover(sd, FFF_UNREACHABLE, 0) < 0) perror("terminal: failover");
        }
        continue;
      }
      fwrite(buf, 1, (size_t)n, stdout);
      fflush(stdout);
    }
  }
  rsp_close(sd);
  rsp_cleanup();
  rsp_freeinfo(&info);
  return 0;
}

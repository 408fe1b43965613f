/* An echo or daytime pool element (RSPLIB's EchoPool / DaytimePool services): echo sends
 * every message back with its PPID; daytime sends the time to each new session and ends it.
 *   echo-server [-daytime] [-poolhandle=EchoPool|DaytimePool] [-rereginterval=MS]
 *               [rsplib options] */
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rserpool.h>

#define SCTP_EOF_FLAG MSG_FIN /* sctp_sndrcvinfo's SCTP_EOF */

static volatile sig_atomic_t stop = 0;
static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char** argv) {
  const char* pool = NULL;
  int daytime = 0;
  unsigned int rereg = 30000;
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-daytime")) daytime = 1;
    else if (!strcmp(argv[i], "-echo")) daytime = 0;
    else if (!strncmp(argv[i], "-poolhandle=", 12)) pool = argv[i] + 12;
    else if (!strncmp(argv[i], "-rereginterval=", 15)) rereg = (unsigned)atoi(argv[i] + 15);
    else if (!rsp_initarg(&info, argv[i])) {
      fprintf(stderr, "echo-server: bad argument %s\n", argv[i]);
      return 1;
    }
  }
  if (!pool) pool = daytime ? "DaytimePool" : "EchoPool";
  if (rsp_initialize(&info) < 0) { perror("rsp_initialize"); return 1; }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int sd = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  if (sd < 0 || rsp_register(sd, (const unsigned char*)pool, strlen(pool), NULL, rereg, 0) < 0) {
    perror("echo-server: register");
    return 1;
  }
  uint32_t id = 0;
  rsp_getsockname(sd, NULL, NULL, &id);
  printf("echo-server: registered in %s as 0x%08x\n", pool, id);
  fflush(stdout);
  char buf[65536];
  while (!stop) {
    struct rsp_sndrcvinfo ri;
    int flags = 0;
    ssize_t n = rsp_recvfullmsg(sd, buf, sizeof(buf), &ri, &flags, 500);
    if (n <= 0 || (flags & MSG_RSERPOOL_COOKIE_ECHO)) continue;
    if (flags & MSG_RSERPOOL_NOTIFICATION) {
      const union rserpool_notification* no = (const void*)buf;
      if (daytime && no->rn_header.rn_type == RSERPOOL_SESSION_CHANGE &&
          no->rn_session_change.rsc_state == RSERPOOL_SESSION_ADD) {
        time_t t = time(NULL);
        char text[64];
        size_t len = strftime(text, sizeof(text), "%a %b %e %H:%M:%S %Y\n", localtime(&t));
        rsp_sendmsg(sd, text, len, 0, no->rn_session_change.rsc_session, 0, 0, 0,
                    SCTP_EOF_FLAG, -1);
      }
      continue;
    }
    if (!daytime) {
      rsp_sendmsg(sd, buf, (size_t)n, 0, ri.rinfo_session, ri.rinfo_ppid, ri.rinfo_stream, 0, 0,
                  -1);
    }
  }
  rsp_close(sd);
  rsp_cleanup();
  rsp_freeinfo(&info);
  return 0;
}

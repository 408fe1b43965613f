/* A ping-pong pool element (RSPLIB's PingPongPool service): answers every Ping with a Pong
 * and then a cookie carrying its reply count, so that after a failover the new PE goes on
 * counting from the Cookie Echo. One socket serves every session (SOCK_SEQPACKET).
 *   pingpong-server [-poolhandle=PingPongPool] [-rereginterval=MS] [rsplib options] */
#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <rserpool.h>

#include "pingpong.h"

static volatile sig_atomic_t stop = 0;
static void on_signal(int s) { (void)s; stop = 1; }
static uint64_t replies[SESSION_SETSIZE]; /* the next reply number of each session */

int main(int argc, char** argv) {
  const char* pool = "PingPongPool";
  unsigned int rereg = 30000;
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "-poolhandle=", 12)) pool = argv[i] + 12;
    else if (!strncmp(argv[i], "-rereginterval=", 15)) rereg = (unsigned)atoi(argv[i] + 15);
    else if (!rsp_initarg(&info, argv[i])) {
      fprintf(stderr, "pingpong-server: bad argument %s\n", argv[i]);
      return 1;
    }
  }
  if (rsp_initialize(&info) < 0) { perror("rsp_initialize"); return 1; }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  int sd = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  struct rsp_loadinfo load = {.rli_policy = PPT_ROUNDROBIN};
  if (sd < 0 || rsp_register(sd, (const unsigned char*)pool, strlen(pool), &load, rereg, 0) < 0) {
    perror("pingpong-server: register");
    return 1;
  }
  uint32_t id = 0;
  rsp_getsockname(sd, NULL, NULL, &id);
  printf("pingpong-server: registered in %s as 0x%08x\n", pool, id);
  fflush(stdout);
  char buf[65536];
  while (!stop) {
    struct rsp_sndrcvinfo ri;
    int flags = 0;
    ssize_t n = rsp_recvmsg(sd, buf, sizeof(buf), &ri, &flags, 500);
    if (n <= 0) continue;
    int s = ri.rinfo_session;
    if (flags & MSG_RSERPOOL_NOTIFICATION) {
      const union rserpool_notification* no = (const void*)buf;
      if (no->rn_header.rn_type == RSERPOOL_SESSION_CHANGE &&
          no->rn_session_change.rsc_state == RSERPOOL_SESSION_ADD) {
        replies[no->rn_session_change.rsc_session % SESSION_SETSIZE] = 1;
      }
      continue;
    }
    if (flags & MSG_RSERPOOL_COOKIE_ECHO) {
      const struct pingpong_cookie* c = (const void*)buf;
      if (n == sizeof(*c) && !memcmp(c->id, PINGPONG_COOKIE_ID, 8)) {
        replies[s % SESSION_SETSIZE] = be64toh(c->reply_no);
        printf("pingpong-server: session %d resumes at reply %llu\n", s,
               (unsigned long long)be64toh(c->reply_no));
        fflush(stdout);
      }
      continue;
    }
    const struct pingpong_ping* ping = (const void*)buf;
    if (ntohl(ri.rinfo_ppid) != PPID_PINGPONG || n < (ssize_t)sizeof(*ping) ||
        ping->header.type != PINGPONG_PING) {
      continue;
    }
    size_t data = (size_t)n - sizeof(*ping);
    char out[65536 + 16];
    struct pingpong_pong* pong = (void*)out;
    uint64_t* next = &replies[s % SESSION_SETSIZE];
    pong->header.type = PINGPONG_PONG;
    pong->header.flags = 0;
    pong->header.length = htons((uint16_t)(sizeof(*pong) + data));
    pong->message_no = ping->message_no;
    pong->reply_no = htobe64((*next)++);
    memcpy(pong->data, ping->data, data);
    /* The cookie first: when the client has a Pong, it has the state after it too. */
    struct pingpong_cookie cookie;
    memcpy(cookie.id, PINGPONG_COOKIE_ID, 8);
    cookie.reply_no = htobe64(*next);
    rsp_send_cookie(sd, (const unsigned char*)&cookie, sizeof(cookie), s, -1);
    rsp_sendmsg(sd, out, sizeof(*pong) + data, 0, s, htonl(PPID_PINGPONG), 0, 0, 0, -1);
  }
  rsp_close(sd);
  rsp_cleanup();
  rsp_freeinfo(&info);
  return 0;
}

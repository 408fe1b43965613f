/* A one-to-many pool element and a pool user in one program, through librserpool: the PE
 * registers, the PU resolves the pool with rsp_getaddrinfo and connects a session; data
 * goes both ways with PPID and stream; the PE sees the session come (SESSION_CHANGE) and
 * sends a cookie; descriptors work in the program's own poll() and in rsp_poll() with
 * standard input; the PE's close ends the session (FAILOVER_NECESSARY at the PU). */
#include <arpa/inet.h>
#include <poll.h>
#include <unistd.h>

#include "rserpool.h"
#include "check.h"

static const char POOL[] = "CSessionPool";
#define PPID 33

/* Waits (at most 20 s) for a descriptor to become readable in plain poll(). */
static void wait_readable(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  CHECK(poll(&p, 1, 20000) == 1);
  CHECK(p.revents & POLLIN);
}

int main(int argc, char** argv) {
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    CHECK(rsp_initarg(&info, argv[i]) == 1);
  }
  CHECK(rsp_initarg(&info, "-nosuchoption") == 0);
  CHECK(rsp_initialize(&info) == 0);
  CHECK(rsp_initialize(&info) == 0); /* a second call is a no-op */

  /* The pool element. */
  int pe = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  CHECK(pe >= 0);
  struct rsp_loadinfo load;
  memset(&load, 0, sizeof(load));
  load.rli_policy = PPT_LEASTUSED;
  load.rli_load = 0x10000000;
  CHECK(rsp_register(pe, (const unsigned char*)POOL, strlen(POOL), &load, 30000, 0) == 0);
  uint32_t pe_id = 0;
  unsigned char name[64];
  size_t name_size = sizeof(name);
  CHECK(rsp_getsockname(pe, name, &name_size, &pe_id) == 0);
  CHECK(name_size == strlen(POOL) && memcmp(name, POOL, name_size) == 0);
  CHECK(pe_id != 0);
  name_size = 2;
  CHECK_ERR(rsp_getsockname(pe, name, &name_size, &pe_id), ENOBUFS);

  /* Handle resolution in basic mode finds it. */
  struct rsp_addrinfo* ai = NULL;
  CHECK(rsp_getaddrinfo((const unsigned char*)POOL, strlen(POOL), &ai, 3, 0) == 1);
  CHECK(ai != NULL && ai->ai_next == NULL);
  CHECK(ai->ai_pe_id == pe_id);
  CHECK(ai->ai_protocol == IPPROTO_SCTP && ai->ai_addrs >= 1);
  CHECK(ai->ai_family == AF_INET && ai->ai_addr->sa_family == AF_INET);
  rsp_freeaddrinfo(ai);
  CHECK(rsp_getaddrinfo((const unsigned char*)"NoSuchPool", 10, &ai, 1, 0) == REAI_NONAME);

  /* Nothing to receive yet: the descriptor is not readable, a zero timeout says EAGAIN. */
  struct pollfd p = {.fd = pe, .events = POLLIN};
  CHECK(poll(&p, 1, 0) == 0);
  char buf[256];
  struct rsp_sndrcvinfo ri;
  int flags = 0;
  CHECK_ERR(rsp_recvmsg(pe, buf, sizeof(buf), &ri, &flags, 0), EAGAIN);

  /* The pool user. */
  int pu = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  CHECK(pu >= 0);
  CHECK(rsp_connect(pu, (const unsigned char*)POOL, strlen(POOL), 0) == 0);
  CHECK_ERR(rsp_connect(pu, (const unsigned char*)POOL, strlen(POOL), 0), EBADF);
  uint32_t peer = 0;
  CHECK(rsp_getpeername(pu, NULL, NULL, &peer) == 0);
  CHECK(peer == pe_id);
  CHECK(rsp_has_cookie(pu) == 0);
  CHECK(rsp_sendmsg(pu, "hello", 5, 0, 0, htonl(PPID), 1, 0, 0, -1) == 5);

  /* The PE: the session first, then its message. */
  wait_readable(pe);
  /* A notification does not fit in 4 bytes: ENOMEM, and it stays queued. */
  CHECK_ERR(rsp_recvmsg(pe, buf, 4, &ri, &flags, 20000), ENOMEM);
  ssize_t n = rsp_recvmsg(pe, buf, sizeof(buf), &ri, &flags, 20000);
  CHECK(n == (ssize_t)sizeof(struct rserpool_session_change));
  CHECK(flags & MSG_RSERPOOL_NOTIFICATION);
  const union rserpool_notification* note = (const union rserpool_notification*)buf;
  CHECK(note->rn_header.rn_type == RSERPOOL_SESSION_CHANGE);
  CHECK(note->rn_session_change.rsc_state == RSERPOOL_SESSION_ADD);
  rserpool_session_t session = note->rn_session_change.rsc_session;
  CHECK(session >= 1 && session < SESSION_SETSIZE);
  n = rsp_recvmsg(pe, buf, sizeof(buf), &ri, &flags, 20000);
  CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
  CHECK(flags == MSG_EOR);
  CHECK(ri.rinfo_session == session && ri.rinfo_ppid == htonl(PPID) && ri.rinfo_stream == 1);
  CHECK(poll(&p, 1, 0) == 0); /* drained: not readable any more */

  /* A large message, read in parts. */
  char big[3000];
  for (size_t i = 0; i < sizeof(big); i++) big[i] = (char)i;
  CHECK(rsp_sendmsg(pe, big, sizeof(big), 0, session, htonl(PPID), 0, 0, 0, -1) ==
        (ssize_t)sizeof(big));
  CHECK(rsp_send_cookie(pe, (const unsigned char*)"<STATE>1", 8, session, -1) == 8);
  CHECK_ERR(rsp_sendmsg(pe, "x", 1, 0, 999, htonl(PPID), 0, 0, 0, -1), EBADF);
  CHECK_ERR(rsp_sendmsg(pe, "x", 1, 0, session, htonl(11), 0, 0, 0, -1), EINVAL);

  /* The PU's descriptor in rsp_poll beside standard input. */
  struct pollfd ps[2] = {{.fd = 0, .events = POLLIN}, {.fd = pu, .events = POLLIN}};
  for (int tries = 0; !(ps[1].revents & POLLIN); tries++) {
    CHECK(tries < 20000);
    CHECK(rsp_poll(ps, 2, 20000) >= 1);
    if (!(ps[1].revents & POLLIN)) usleep(1000); /* standard input (at EOF) is readable */
  }
  char part[1000];
  size_t got = 0;
  for (;;) {
    n = rsp_recvmsg(pu, part, sizeof(part), &ri, &flags, 20000);
    CHECK(n > 0);
    CHECK(memcmp(part, big + got, (size_t)n) == 0);
    got += (size_t)n;
    if (flags & MSG_EOR) break;
  }
  CHECK(got == sizeof(big));
  CHECK(ri.rinfo_pe_id == pe_id && ri.rinfo_ppid == htonl(PPID));

  /* A message after the cookie, on the same ordered stream: once the PU has it, it holds
   * the cookie. */
  CHECK(rsp_sendmsg(pe, "sync", 4, 0, session, htonl(PPID), 0, 0, 0, -1) == 4);
  n = rsp_recvfullmsg(pu, buf, sizeof(buf), &ri, &flags, 20000);
  CHECK(n == 4 && (flags & MSG_EOR) && memcmp(buf, "sync", 4) == 0);
  CHECK(rsp_has_cookie(pu) == 1);

  /* rsp_read and rsp_write on plain descriptors are read and write. */
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK(rsp_write(fds[1], "pipe", 4) == 4);
  CHECK(rsp_read(fds[0], buf, sizeof(buf)) == 4 && memcmp(buf, "pipe", 4) == 0);
  close(fds[0]);
  close(fds[1]);

  /* The PE goes away: the PU is told to fail over, and sending fails until it does. */
  CHECK(rsp_close(pe) == 0);
  CHECK_ERR(rsp_close(pe), EBADF);
  wait_readable(pu);
  n = rsp_recvmsg(pu, buf, sizeof(buf), &ri, &flags, 20000);
  CHECK(flags & MSG_RSERPOOL_NOTIFICATION);
  note = (const union rserpool_notification*)buf;
  if (note->rn_header.rn_type == RSERPOOL_SHUTDOWN_EVENT) {
    n = rsp_recvmsg(pu, buf, sizeof(buf), &ri, &flags, 20000);
    CHECK(flags & MSG_RSERPOOL_NOTIFICATION);
  }
  CHECK(note->rn_header.rn_type == RSERPOOL_FAILOVER);
  CHECK(note->rn_failover.rf_state == RSERPOOL_FAILOVER_NECESSARY);
  CHECK(note->rn_failover.rf_has_cookie == 1);
  rsp_print_notification(note, stdout);
  printf("\n");
  CHECK_ERR(rsp_sendmsg(pu, "x", 1, 0, 0, htonl(PPID), 0, 0, 0, -1), EIO);
  /* No PE left: failing over finds none. */
  CHECK_ERR(rsp_forcefailover(pu, FFF_NONE, 0), ENOENT);

  CHECK(rsp_close(pu) == 0);
  rsp_cleanup();
  rsp_freeinfo(&info);
  printf("session: ok\n");
  return 0;
}

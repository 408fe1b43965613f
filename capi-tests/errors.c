/* Bad input gets a defined error, never a crash: calls before rsp_initialize, NULL
 * pointers, unknown and closed descriptors, a pool handle over the limit, a buffer too small
 * for a notification, and a registrar that is down (argv[1] names one where none listens). */
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "rserpool.h"
#include "check.h"

#include <stddef.h>

/* The x86-64 layout of RSPLIB's structs: programs built for RSPLIB work unchanged. */
#if defined(__x86_64__)
_Static_assert(sizeof(struct rsp_registrar_info) == 24, "rsp_registrar_info");
_Static_assert(sizeof(struct rsp_info) == 96, "rsp_info");
_Static_assert(offsetof(struct rsp_info, ri_disable_autoconfig) == 32, "ri_disable_autoconfig");
_Static_assert(offsetof(struct rsp_info, ri_registrar_announce_timeout) == 48, "announce");
_Static_assert(offsetof(struct rsp_info, ri_csp_identifier) == 72, "ri_csp_identifier");
_Static_assert(offsetof(struct rsp_info, ri_csp_interval) == 88, "ri_csp_interval");
_Static_assert(sizeof(struct rsp_loadinfo) == 24, "rsp_loadinfo");
_Static_assert(offsetof(struct rsp_loadinfo, rli_load_dpf) == 20, "rli_load_dpf");
_Static_assert(sizeof(struct rsp_addrinfo) == 56, "rsp_addrinfo");
_Static_assert(offsetof(struct rsp_addrinfo, ai_addrlen) == 16, "ai_addrlen");
_Static_assert(offsetof(struct rsp_addrinfo, ai_next) == 40, "ai_next");
_Static_assert(offsetof(struct rsp_addrinfo, ai_pe_id) == 48, "ai_pe_id");
_Static_assert(sizeof(struct rsp_sndrcvinfo) == 20, "rsp_sndrcvinfo");
_Static_assert(offsetof(struct rsp_sndrcvinfo, rinfo_stream) == 16, "rinfo_stream");
_Static_assert(sizeof(struct rserpool_failover) == 20, "rserpool_failover");
_Static_assert(offsetof(struct rserpool_failover, rf_has_cookie) == 16, "rf_has_cookie");
_Static_assert(sizeof(struct rserpool_session_change) == 16, "rserpool_session_change");
_Static_assert(sizeof(struct rserpool_shutdown_event) == 12, "rserpool_shutdown_event");
_Static_assert(sizeof(union rserpool_notification) == 20, "rserpool_notification");
_Static_assert(sizeof(struct rserpool_session_parameters) == 24, "rserpool_session_parameters");
#endif

static const unsigned char POOL[] = "CErrorPool";
#define PLEN (sizeof(POOL) - 1)

int main(int argc, char** argv) {
  /* Before rsp_initialize. */
  CHECK_ERR(rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP), EACCES);
  struct rsp_addrinfo* ai = (struct rsp_addrinfo*)1;
  errno = 0;
  CHECK(rsp_getaddrinfo(POOL, PLEN, &ai, 1, 0) == REAI_SYSTEM && errno == EACCES);
  CHECK(ai == NULL);
  CHECK(rsp_pe_failure(POOL, PLEN, 1) == 0x1000); /* RSPERR_NOT_INITIALIZED */
  CHECK_ERR(rsp_close(5), EACCES);
  CHECK(rsp_has_cookie(5) == 0);

  /* Things that need no library. */
  CHECK(strcmp(rsp_getpolicybytype(PPT_LEASTUSED), "LeastUsed") == 0);
  CHECK(strcmp(rsp_getpolicybytype(PPT_PRIORITY_LEASTUSED_DEGRADATION_DPF),
               "PriorityLeastUsedDegradationDPF") == 0);
  CHECK(rsp_getpolicybytype(0x12345678) == NULL);
  CHECK(rsp_getpolicybyname("roundrobin") == PPT_ROUNDROBIN);
  CHECK(rsp_getpolicybyname("NoSuchPolicy") == PPT_UNDEFINED);
  CHECK(rsp_getpolicybyname(NULL) == PPT_UNDEFINED);
  CHECK(PPT_IS_ADAPTIVE(PPT_LEASTUSED_DPF) && !PPT_IS_ADAPTIVE(PPT_WEIGHTED_RANDOM_DPF));
  CHECK(CID_GROUP(CID_COMPOUND(CID_GROUP_POOLUSER, 0x1234)) == CID_GROUP_POOLUSER);
  CHECK(CID_OBJECT(CID_COMPOUND(CID_GROUP_POOLUSER, 0x1234)) == 0x1234);
  rsp_initinfo(NULL);
  rsp_freeinfo(NULL);
  rsp_freeaddrinfo(NULL);
  rsp_print_notification(NULL, stdout);
  CHECK(rsp_initarg(NULL, "-registrar=127.0.0.1") == 0);

  struct rsp_info info;
  rsp_initinfo(&info);
  CHECK(rsp_initarg(&info, NULL) == 0);
  CHECK(rsp_initarg(&info, "-registrar=not-an-address") == 0);
  CHECK(rsp_initarg(&info, "-registrarresponsetimeout=x") == 0);
  CHECK(rsp_initarg(&info, "-loglevel=5") == 1);
  CHECK(rsp_initarg(&info, "-registrarresponsetimeout=300") == 1);
  CHECK(rsp_initarg(&info, "-registrarrequesttimeout=300") == 1);
  CHECK(rsp_initarg(&info, "-registrarconnecttimeout=300") == 1);
  CHECK(rsp_initarg(&info, "-registrarrequestmaxtrials=1") == 1);
  CHECK(info.ri_registrar_response_timeout == 300 && info.ri_registrar_request_max_trials == 1);
  for (int i = 1; i < argc; i++) CHECK(rsp_initarg(&info, argv[i]) == 1);
  CHECK(info.ri_registrars != NULL);
  CHECK(rsp_initialize(&info) == 0);

  /* Sockets: bad arguments and unknown descriptors. */
  CHECK_ERR(rsp_socket(AF_UNIX, SOCK_SEQPACKET, IPPROTO_SCTP), EAFNOSUPPORT);
  CHECK_ERR(rsp_socket(0, SOCK_DGRAM, IPPROTO_SCTP), ESOCKTNOSUPPORT);
  CHECK_ERR(rsp_socket(0, SOCK_SEQPACKET, IPPROTO_TCP), EPROTONOSUPPORT);
  CHECK_ERR(rsp_close(-1), EBADF);
  CHECK_ERR(rsp_close(12345), EBADF);
  CHECK_ERR(rsp_accept(12345, 0), EBADF);
  char buf[8];
  CHECK_ERR(rsp_recvmsg(12345, buf, sizeof(buf), NULL, NULL, 0), EBADF);
  CHECK_ERR(rsp_sendmsg(12345, "x", 1, 0, 0, 0, 0, 0, 0, 0), EBADF);
  CHECK_ERR(rsp_update_session_parameters(12345, NULL), EBADF);

  int sd = rsp_socket(AF_INET, SOCK_SEQPACKET, IPPROTO_SCTP);
  CHECK(sd >= 0);
  CHECK_ERR(rsp_update_session_parameters(sd, NULL), EINVAL);
  CHECK_ERR(rsp_sendmsg(sd, "x", 1, 0, 0, 0, 0, 0, 0, 0), ENOTCONN);
  CHECK_ERR(rsp_sendmsg(sd, NULL, 1, 0, 0, 0, 0, 0, 0, 0), EINVAL);
  CHECK_ERR(rsp_recvmsg(sd, NULL, 10, NULL, NULL, 0), EINVAL);
  CHECK_ERR(rsp_recvmsg(sd, buf, sizeof(buf), NULL, NULL, 0), EAGAIN);
  CHECK_ERR(rsp_recvmsg(sd, buf, sizeof(buf), NULL, NULL, 50), EAGAIN);
  CHECK_ERR(rsp_accept(sd, 0), EBADF); /* not a PE */
  CHECK_ERR(rsp_deregister(sd, 0), EBADF);
  CHECK_ERR(rsp_forcefailover(sd, FFF_NONE, 0), EBADF);
  CHECK_ERR(rsp_getpeername(sd, NULL, NULL, NULL), EBADF);
  CHECK_ERR(rsp_getsockname(sd, NULL, NULL, NULL), EBADF);
  CHECK_ERR(rsp_send_cookie(sd, NULL, 0, 0, 0), EINVAL);
  CHECK(rsp_bind(sd, NULL, 0) == 0); /* any address */
  CHECK_ERR(rsp_getsockopt(sd, SOL_SOCKET, SO_RCVBUF, buf, NULL), ENOPROTOOPT);
  CHECK_ERR(rsp_unmapsocket(sd), EBADF);
  CHECK(rsp_mapsocket(0, -1) == 0);
  CHECK(rsp_unmapsocket(0) == 0);
  CHECK_ERR(rsp_mapsocket(9999, -1), EBADF);

  /* Pool handles: NULL, empty, over 32 bytes. */
  unsigned char longname[40];
  memset(longname, 'x', sizeof(longname));
  CHECK_ERR(rsp_register(sd, NULL, 4, NULL, 1000, 0), EINVAL);
  CHECK_ERR(rsp_register(sd, POOL, 0, NULL, 1000, 0), EINVAL);
  CHECK_ERR(rsp_register(sd, longname, sizeof(longname), NULL, 1000, 0), ENAMETOOLONG);
  CHECK_ERR(rsp_connect(sd, longname, sizeof(longname), 0), ENAMETOOLONG);
  errno = 0;
  CHECK(rsp_getaddrinfo(longname, sizeof(longname), &ai, 1, 0) == REAI_SYSTEM);
  CHECK(errno == ENAMETOOLONG);
  CHECK(rsp_getaddrinfo(POOL, PLEN, NULL, 1, 0) == REAI_SYSTEM);
  struct rsp_loadinfo bad;
  memset(&bad, 0, sizeof(bad));
  bad.rli_policy = 0x12345678;
  CHECK_ERR(rsp_register(sd, POOL, PLEN, &bad, 1000, 0), EINVAL);

  /* The registrar is down: errors, bounded in time. */
  time_t t0 = time(NULL);
  errno = 0;
  CHECK(rsp_getaddrinfo(POOL, PLEN, &ai, 1, 0) == REAI_SYSTEM);
  CHECK(errno == EHOSTUNREACH || errno == ETIMEDOUT);
  errno = 0;
  CHECK(rsp_register(sd, POOL, PLEN, NULL, 1000, 0) == -1);
  CHECK(errno == EHOSTUNREACH || errno == ETIMEDOUT);
  /* ...and the socket is still usable. */
  CHECK(rsp_register(sd, POOL, PLEN, NULL, 1000, REGF_DONTWAIT) == 0);
  CHECK(rsp_getsockname(sd, NULL, NULL, NULL) == 0);
  CHECK(rsp_register(sd, (const unsigned char*)"Other", 5, NULL, 1000, 0) == -1 && errno == EBADF);
  printf("registrar down: errors within %ld s\n", (long)(time(NULL) - t0));

  /* A freed list is not freed twice; foreign pointers are not freed. */
  struct rsp_addrinfo mine;
  memset(&mine, 0, sizeof(mine));
  rsp_freeaddrinfo(&mine);

  CHECK(rsp_close(sd) == 0);
  CHECK_ERR(rsp_close(sd), EBADF);
  rsp_cleanup();
  rsp_cleanup();
  CHECK_ERR(rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP), EACCES);
  rsp_freeinfo(&info);
  CHECK(info.ri_registrars == NULL);
  printf("errors: ok\n");
  return 0;
}

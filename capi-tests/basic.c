/* Basic mode: three PEs registered with rsp_pe_registration (one with two addresses), the
 * lists rsp_getaddrinfo builds for them from a registrar and from the cache (every entry,
 * its addresses and port, the length the call returns, the items limit, Round Robin turning
 * in the cache), rsp_pe_failure taking a PE out of the cache, rsp_pe_deregistration. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "rserpool.h"
#include "check.h"

static const char POOL[] = "CBasicPool";
#define PH ((const unsigned char*)POOL)
#define PLEN strlen(POOL)

enum { PES = 3 };

static struct sockaddr_in addr(const char* ip, uint16_t port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  CHECK(inet_pton(AF_INET, ip, &a.sin_addr) == 1);
  return a;
}

/* Which PE an entry is (by its identifier), checking its addresses; -1 when unknown. */
static int which(const struct rsp_addrinfo* ai, const uint32_t* ids) {
  for (int i = 0; i < PES; i++) {
    if (ai->ai_pe_id != ids[i]) {
      continue;
    }
    CHECK(ai->ai_family == AF_INET && ai->ai_socktype == SOCK_STREAM);
    CHECK(ai->ai_protocol == IPPROTO_SCTP);
    CHECK(ai->ai_addrlen == sizeof(struct sockaddr_in));
    CHECK(ai->ai_addrs == (i == 2 ? 2u : 1u));
    const struct sockaddr_in* a = (const struct sockaddr_in*)ai->ai_addr;
    for (size_t k = 0; k < ai->ai_addrs; k++) {
      CHECK(a[k].sin_family == AF_INET);
      CHECK(ntohs(a[k].sin_port) == 7100 + i);
      CHECK(ntohl(a[k].sin_addr.s_addr) == (k == 0 ? INADDR_LOOPBACK : INADDR_LOOPBACK + 1));
    }
    return i;
  }
  return -1;
}

/* Resolves with `items` and `stale`, checks the list against its length and the PEs; returns
 * the length and fills `order` with the PEs in list order. */
static int resolve(size_t items, unsigned stale, const uint32_t* ids, int* order) {
  struct rsp_addrinfo* ai = NULL;
  int n = rsp_getaddrinfo(PH, PLEN, &ai, items, stale);
  CHECK(n >= 1 && ai != NULL);
  int seen = 0, k = 0;
  for (struct rsp_addrinfo* p = ai; p != NULL; p = p->ai_next, k++) {
    CHECK(k < n);
    int i = which(p, ids);
    CHECK(i >= 0);
    CHECK((seen & (1 << i)) == 0); /* every PE once */
    seen |= 1 << i;
    order[k] = i;
  }
  CHECK(k == n);
  rsp_freeaddrinfo(ai);
  return n;
}

int main(int argc, char** argv) {
  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    CHECK(rsp_initarg(&info, argv[i]) == 1);
  }
  CHECK(rsp_initialize(&info) == 0);

  uint32_t ids[PES];
  for (int i = 0; i < PES; i++) {
    struct sockaddr_in a[2] = {addr("127.0.0.1", 7100 + i), addr("127.0.0.2", 7100 + i)};
    struct rsp_addrinfo pe;
    memset(&pe, 0, sizeof(pe));
    pe.ai_family = AF_INET;
    pe.ai_socktype = SOCK_STREAM;
    pe.ai_protocol = IPPROTO_SCTP;
    pe.ai_addrlen = sizeof(a[0]);
    pe.ai_addrs = i == 2 ? 2 : 1;
    pe.ai_addr = (struct sockaddr*)a;
    /* NULL load info: Round Robin, as RSPLIB. */
    CHECK(rsp_pe_registration(PH, PLEN, &pe, NULL, 30000, 0) == 0);
    CHECK(pe.ai_pe_id != 0);
    ids[i] = pe.ai_pe_id;
  }

  int order[PES];
  /* From the registrar, not cached: all three, then the items limit. */
  CHECK(resolve(PES, 0, ids, order) == PES);
  CHECK(resolve(10, 0, ids, order) == PES);
  CHECK(resolve(2, 0, ids, order) == 2);

  /* Cached for a minute: the same PEs, each call's first one turning round. */
  CHECK(resolve(PES, 60000, ids, order) == PES);
  int firsts = 0;
  for (int r = 0; r < PES; r++) {
    CHECK(resolve(1, 60000, ids, order) == 1);
    firsts |= 1 << order[0];
  }
  CHECK(firsts == (1 << PES) - 1);
  CHECK(resolve(2, 60000, ids, order) == 2);

  /* A PE reported unreachable leaves the cache at once. */
  CHECK(rsp_pe_failure(PH, PLEN, ids[1]) == 0);
  CHECK(resolve(PES, 60000, ids, order) == PES - 1);
  CHECK(order[0] != 1 && order[1] != 1);

  for (int i = 0; i < PES; i++) {
    CHECK(rsp_pe_deregistration(PH, PLEN, ids[i], 0) == 0);
  }
  struct rsp_addrinfo* ai = NULL;
  CHECK(rsp_getaddrinfo(PH, PLEN, &ai, PES, 0) == REAI_NONAME && ai == NULL);

  rsp_cleanup();
  rsp_freeinfo(&info);
  puts("basic: ok");
  return 0;
}

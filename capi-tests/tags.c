/* rserpool-internals.h and tagitem.h: the tag-list helpers (chains, skips, bounds), the
 * *_tags calls with the tags RSPLIB's servers pass (a chosen PE identifier, the session's
 * connect timeout), and the per-call staleCacheValue of rsp_getaddrinfo: a cached answer
 * outlives the PE's deregistration until it is stale, an uncached call sees the change. */
#include <arpa/inet.h>
#include <unistd.h>

#include "rserpool-internals.h"
#include "check.h"

static const char POOL[] = "CTagsPool";

static void tag_lists(void) {
  struct TagItem more[] = {{TAG_USER + 3, 33}, {TAG_IGNORE, 0}, {TAG_USER + 4, 44}, {TAG_DONE, 0}};
  struct TagItem list[] = {
      {TAG_USER + 1, 11},
      {TAG_SKIP, 1},
      {TAG_USER + 2, 22}, /* skipped */
      {TAG_IGNORE, 0},
      {TAG_USER + 5, 55},
      {TAG_MORE, (tagdata_t)more},
      {TAG_USER + 6, 66}, /* after TAG_MORE: not part of the list */
      {TAG_DONE, 0},
  };
  CHECK(tagListGetData(list, TAG_USER + 1, 0) == 11);
  CHECK(tagListGetData(list, TAG_USER + 2, 7) == 7);
  CHECK(tagListGetData(list, TAG_USER + 5, 0) == 55);
  CHECK(tagListGetData(list, TAG_USER + 4, 0) == 44);
  CHECK(tagListGetData(list, TAG_USER + 6, 7) == 7);
  CHECK(tagListGetData(NULL, TAG_USER + 1, 9) == 9);
  CHECK(tagListFind(list, TAG_USER + 3) == &more[0]);
  CHECK(tagListFind(list, TAG_USER + 99) == NULL);
  /* The walk: 1, 5, 3, 4. */
  struct TagItem* t = tagListNext(list);
  CHECK(t == &list[4]);
  t = tagListNext(t);
  CHECK(t == &more[0]);
  t = tagListNext(t);
  CHECK(t == &more[2]);
  CHECK(tagListNext(t) == NULL);
  CHECK(tagListSetData(list, TAG_USER + 4, 440) == &more[2] && more[2].Data == 440);
  CHECK(tagListSetData(list, TAG_USER + 99, 1) == NULL);
  CHECK(tagListGetSize(list) == 8);
  CHECK(tagListGetSize(NULL) == 0);

  struct TagItem* copy = tagListDuplicate(list);
  CHECK(copy != NULL && memcmp(copy, list, sizeof(list)) == 0);
  tagListFree(copy);
  const tag_t filter[] = {TAG_USER + 5, TAG_USER + 1, TAG_DONE};
  copy = tagListDuplicateFilter(list, filter);
  CHECK(copy != NULL);
  CHECK(copy[0].Tag == TAG_USER + 1 && copy[0].Data == 11);
  CHECK(copy[1].Tag == TAG_USER + 5 && copy[1].Data == 55);
  CHECK(copy[2].Tag == TAG_DONE && tagListGetSize(copy) == 3);
  tagListFree(copy);
  tagListFree(NULL);

  struct TagItem* fresh = tagListAllocate(4);
  CHECK(fresh != NULL && fresh[0].Tag == TAG_DONE && tagListGetSize(fresh) == 1);
  tagListFree(fresh);

  /* A list that chains back to itself ends instead of looping. */
  struct TagItem loop[2] = {{TAG_USER + 1, 1}, {TAG_MORE, 0}};
  loop[1].Data = (tagdata_t)loop;
  CHECK(tagListGetData(loop, TAG_USER + 2, 5) == 5);

  FILE* f = tmpfile();
  CHECK(f != NULL);
  tagListPrint(list, f);
  rewind(f);
  char text[512];
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  text[n] = 0;
  fclose(f);
  CHECK(strstr(text, "TagList:") == text);
  CHECK(strstr(text, "tag   1000005 ->        55") != NULL);
  CHECK(strstr(text, "1000002") == NULL);
}

int main(int argc, char** argv) {
  tag_lists();

  struct rsp_info info;
  rsp_initinfo(&info);
  for (int i = 1; i < argc; i++) {
    CHECK(rsp_initarg(&info, argv[i]) == 1);
  }
  CHECK(rsp_initialize(&info) == 0);

  /* A PE with the identifier RSPLIB's servers pass in TAG_PoolElement_Identifier. */
  struct TagItem tags[] = {{TAG_PoolElement_Identifier, 0x7a65}, {TAG_DONE, 0}};
  int pe = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  CHECK(pe >= 0);
  CHECK(rsp_register_tags(pe, (const unsigned char*)POOL, strlen(POOL), NULL, 30000, 0, tags) == 0);
  uint32_t id = 0;
  CHECK(rsp_getsockname(pe, NULL, NULL, &id) == 0);
  CHECK(id == 0x7a65);

  /* Cached for 60 s: the registrar is not asked again while that lasts. */
  struct rsp_addrinfo* ai = NULL;
  CHECK(rsp_getaddrinfo_tags((const unsigned char*)POOL, strlen(POOL), &ai, 1, 60000, NULL) == 1);
  CHECK(ai->ai_pe_id == 0x7a65);
  rsp_freeaddrinfo(ai);

  /* The PU connects with its own connect timeout (µs) and gets that PE. */
  struct TagItem connect_tags[] = {{TAG_RspSession_ConnectTimeout, 2000000}, {TAG_DONE, 0}};
  int pu = rsp_socket(0, SOCK_SEQPACKET, IPPROTO_SCTP);
  CHECK(pu >= 0);
  CHECK(rsp_connect_tags(pu, (const unsigned char*)POOL, strlen(POOL), 0, connect_tags) == 0);
  uint32_t peer = 0;
  CHECK(rsp_getpeername(pu, NULL, NULL, &peer) == 0);
  CHECK(peer == 0x7a65);
  CHECK(rsp_sendmsg(pu, "tags", 4, 0, 0, htonl(33), 0, 0, 0, -1) == 4);
  CHECK(rsp_close(pu) == 0);

  /* Deregistered: an uncached resolution sees it at once, the cached answer lasts. */
  CHECK(rsp_deregister_tags(pe, 0, NULL) == 0);
  CHECK(rsp_getaddrinfo((const unsigned char*)POOL, strlen(POOL), &ai, 1, 0) == REAI_NONAME);
  CHECK(rsp_getaddrinfo((const unsigned char*)POOL, strlen(POOL), &ai, 1, 60000) == 1);
  CHECK(ai->ai_pe_id == 0x7a65);
  rsp_freeaddrinfo(ai);
  CHECK(rsp_close(pe) == 0);

  /* Basic mode: the tag fills in an ai_pe_id of 0. */
  struct sockaddr_in a;
  memset(&a, 0, sizeof(a));
  a.sin_family = AF_INET;
  a.sin_port = htons(7);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  struct rsp_addrinfo basic;
  memset(&basic, 0, sizeof(basic));
  basic.ai_family = AF_INET;
  basic.ai_socktype = SOCK_STREAM;
  basic.ai_protocol = IPPROTO_SCTP;
  basic.ai_addrlen = sizeof(a);
  basic.ai_addrs = 1;
  basic.ai_addr = (struct sockaddr*)&a;
  struct TagItem id_tags[] = {{TAG_PoolElement_Identifier, 0x7a66}, {TAG_DONE, 0}};
  const char basic_pool[] = "CTagsBasicPool";
  CHECK(rsp_pe_registration_tags((const unsigned char*)basic_pool, strlen(basic_pool), &basic, NULL,
                                 30000, 0, id_tags) == 0);
  CHECK(basic.ai_pe_id == 0x7a66);
  CHECK(rsp_getaddrinfo((const unsigned char*)basic_pool, strlen(basic_pool), &ai, 1, 0) == 1);
  CHECK(ai->ai_pe_id == 0x7a66);
  rsp_freeaddrinfo(ai);
  CHECK(rsp_pe_deregistration_tags((const unsigned char*)basic_pool, strlen(basic_pool), 0x7a66, 0,
                                   NULL) == 0);
  CHECK(rsp_pe_failure_tags((const unsigned char*)basic_pool, strlen(basic_pool), 0x7a66, NULL) == 0);

  /* The remaining twins behave as their public calls. */
  CHECK_ERR(rsp_accept_tags(99999, 0, NULL), EBADF);
  CHECK_ERR(rsp_forcefailover_tags(99999, FFF_NONE, 0, NULL), EBADF);

  rsp_cleanup();
  rsp_freeinfo(&info);
  puts("tags: ok");
  return 0;
}

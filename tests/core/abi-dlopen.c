/* libvstor ABI check: dlopen("libvstor.so.0") (the soname, found through
 * LD_LIBRARY_PATH), resolve every symbol of the .sym at its version node
 * with dlvsym, call vstor_version, and check that internal symbols are
 * not reachable.
 *   abi-dlopen LIBVSTOR.SYM
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include <ctype.h>
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vstor.h"

#define STR_(x) #x
#define STR(x) STR_(x)

int main(int argc, char **argv)
{
  if (argc != 2) { fprintf(stderr, "usage: %s LIBVSTOR.SYM\n", argv[0]); return 2; }
  void *h = dlopen("libvstor.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!h) { printf("FAIL: dlopen libvstor.so.0: %s\n", dlerror()); return 1; }
  FILE *f = fopen(argv[1], "r");
  if (!f) { perror(argv[1]); return 1; }
  char line[512], node[64] = "";
  int n = 0, bad = 0, in_global = 0;
  while (fgets(line, sizeof line, f)) {
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (!strncmp(p, "/*", 2) || *p == '*' || !*p) continue;
    char *brace = strchr(p, '{');
    if (brace) {  /* "VSTOR_0.1 {" */
      size_t k = 0;
      while (p + k < brace && !isspace((unsigned char)p[k]) && k < sizeof node - 1) k++;
      memcpy(node, p, k);
      node[k] = 0;
      in_global = 0;
      continue;
    }
    if (!strncmp(p, "global:", 7)) { in_global = 1; continue; }
    if (!strncmp(p, "local:", 6) || *p == '}') { in_global = 0; continue; }
    if (!in_global) continue;
    p[strcspn(p, "; \t\n")] = 0;
    if (!*p) continue;
    n++;
    dlerror();
    void *s = dlvsym(h, p, node);
    if (!s) { printf("FAIL: %s@%s: %s\n", p, node, dlerror()); bad++; }
  }
  fclose(f);
  if (n < 10) { printf("FAIL: only %d symbols found in %s\n", n, argv[1]); bad++; }
  const char *(*version)(void) = (const char *(*)(void))(uintptr_t)dlsym(h, "vstor_version");
  const char *want = STR(VSTOR_VERSION_MAJOR) "." STR(VSTOR_VERSION_MINOR) "." STR(VSTOR_VERSION_MICRO);
  if (!version) { printf("FAIL: no vstor_version\n"); bad++; }
  else if (strcmp(version(), want)) {
    printf("FAIL: vstor_version() = %s, header %s\n", version(), want);
    bad++;
  }
  const char *internal[] = { "vstor__uri_parse", "vstor__error", "vstor__lock", "vstor__host",
                             "vu_run", "vstor_host", NULL };
  for (int i = 0; internal[i]; i++)
    if (dlsym(h, internal[i])) { printf("FAIL: internal symbol %s is exported\n", internal[i]); bad++; }
  printf("dlopen libvstor.so.0: %d symbols resolved at their version node, vstor_version %s, "
         "%d problem(s)\n", n - bad, version ? version() : "?", bad);
  dlclose(h);
  return bad ? 1 : 0;
}

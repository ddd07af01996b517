// libvstor ABI check: vstor.h compiles as C++ (-pedantic -Werror) and
// links with C linkage.  SPDX-License-Identifier: LGPL-2.1-or-later
#include <cstdio>
#include <cstring>
#include "vstor.h"

int main()
{
  vstor_ctx *ctx = vstor_ctx_new(0);
  if (!ctx) return 1;
  uint64_t size = 0;
  int r = vstor_parse_size("+1G", 1, &size);
  unsigned flags = VSTOR_DRY_RUN | VSTOR_OPEN_READONLY;
  enum vstor_code c = VSTOR_E_OK;
  vstor_ctx_free(ctx);
  if (r != 0 || size != (1ull << 30) + 1 || flags == 0 || c != 0) return 1;
  std::printf("C++: vstor.h %s ok\n", vstor_version());
  return std::strlen(vstor_version()) ? 0 : 1;
}

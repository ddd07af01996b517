/* libvstor - size parsing ("+10G", "50G", "1048576")
 * SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include "internal.h"

VSTOR_API int vstor_parse_size(const char *text, uint64_t current, uint64_t *out)
{
  ENTER("vstor_parse_size");
  if (!text || !out)
    return vstor__error(VSTOR_E_INVAL, EINVAL, "NULL argument");
  char t[128];
  vu_shown(text, t);
  const char *p = text;
  bool rel = false;
  if (*p == '+') { rel = true; p++; }
  if (*p == '-')
    return vstor__error(VSTOR_E_INVAL, EINVAL, "\"%s\": negative size (shrinking is not supported)", t);
  if (!isdigit((unsigned char)*p))
    return vstor__error(VSTOR_E_INVAL, EINVAL, "\"%s\": expected a number of bytes, optionally with a unit K M G T P", t);
  uint64_t v = 0;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return vstor__error(VSTOR_E_INVAL, ERANGE, "\"%s\": size too large", t);
    v = v * 10 + d;
  }
  unsigned shift = 0;
  if (*p) {
    static const char units[] = "KMGTPE";
    const char *u = strchr(units, toupper((unsigned char)*p));
    if (!u)
      return vstor__error(VSTOR_E_INVAL, EINVAL, "\"%s\": unknown unit '%c' (use K M G T P E)", t,
                          (unsigned char)*p < 0x20 ? '?' : *p);
    shift = 10u * (unsigned)(u - units + 1);
    p++;
    if (!strcmp(p, "iB") || !strcmp(p, "B") || !strcmp(p, "ib") || !strcmp(p, "b"))
      p += strlen(p);
  }
  if (*p)
  {
    char tr[128];
    return vstor__error(VSTOR_E_INVAL, EINVAL, "\"%s\": trailing characters \"%s\"", t, vu_shown(p, tr));
  }
  if (shift && v > (UINT64_MAX >> shift))
    return vstor__error(VSTOR_E_INVAL, ERANGE, "\"%s\": size too large", t);
  v <<= shift;
  if (rel) {
    if (v > UINT64_MAX - current)
      return vstor__error(VSTOR_E_INVAL, ERANGE, "\"%s\": current size + increment overflows", t);
    v += current;
  }
  if (v > (uint64_t)INT64_MAX)
    return vstor__error(VSTOR_E_INVAL, ERANGE, "\"%s\": size too large (maximum 2^63-1 bytes)", t);
  *out = v;
  return 0;
}

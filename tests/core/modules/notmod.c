/* A shared object named like a backend module that is not one: it has no
 * vstor_backend_init symbol.
 * SPDX-License-Identifier: LGPL-2.1-or-later */
__attribute__((visibility("default"))) int something_else(void);
int something_else(void) { return 42; }

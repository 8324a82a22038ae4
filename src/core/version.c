/*
 * version.c: the version of the library linked at run time, so that a program built against
 * one xledit.h can tell which libxledit it runs with.
 */
#include "xledit.h"

const char *xle_version(void) { return XLE_VERSION_STRING; }

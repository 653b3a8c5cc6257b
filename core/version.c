/* version.c — see version.h. */
#include "core/version.h"

#ifndef TTMERGE_GIT_REV
#define TTMERGE_GIT_REV "unknown"
#endif

const char *ttmerge_version(void) { return "0.1.0"; }
const char *ttmerge_git_rev(void) { return TTMERGE_GIT_REV; }

/* version.h — which ttmerge wrote a file: the release and the git revision it was built from. */
#ifndef TT_VERSION_H
#define TT_VERSION_H

const char *ttmerge_version(void);
const char *ttmerge_git_rev(void); /* `git describe` at configure time, or "unknown" */

#endif

/* image_list.h — which image files make a data set, in which order, with which labels:
 * a torchvision ImageFolder tree or a CSV manifest.
 *
 * Folder (imls_folder): ROOT/<class>/.../<file>, exactly as torchvision 0.14's ImageFolder:
 *   classes   the entries of ROOT that are directories (symlinks followed), sorted bytewise
 *             (Python's str order is the UTF-8 byte order); label = rank in that order.
 *   files     per class, os.walk(followlinks=True) of its directory, the (directory, files)
 *             pairs sorted by the directory's path, each directory's non-directory entries
 *             sorted bytewise; kept when the name ends, case-insensitively, in .jpg .jpeg .png
 *             .ppm .bmp .pgm .tif .tiff .webp (ImageFolder's IMG_EXTENSIONS; only JPEG and PNG
 *             decode here, the others fail at decoding, so that indices stay ImageFolder's).
 *   errors    no class directory, or a class without any image file (ImageFolder raises too);
 *             directory nesting deeper than 64 (a symlink loop).
 * Manifest (imls_manifest): CSV rows `path,label` or `path,label,split` (libcsv, RFC 4180
 *   quotes); a first row whose first field is "path" is a header. Relative paths are resolved
 *   against the manifest's directory. Labels: when every label is a non-negative integer
 *   (< 2^31) it is used as is; otherwise labels are class names, numbered in bytewise sorted
 *   order as ImageFolder numbers its folders. Both are decided over every row, selected by
 *   `split` or not, so that the splits of one manifest number the classes alike. `split` (non-NULL) keeps the rows whose third
 *   field equals it (an error when the manifest has no split column or no such row).
 *
 *   imls_list l = {0};
 *   if (imls_open("data/train", NULL, &l, err)) ...;   // folder or manifest, by the path
 *   for (int i = 0; i < l.n; i++) use(l.paths[i], l.labels[i]);
 *   imls_free(&l);
 *
 * Errors: "PATH: problem" (TT_EINPUT, TT_EIO, TT_ENOMEM); on failure the list is left zeroed.
 * Ownership: an imls_list owns every string and array in it; imls_free releases them.
 */
#ifndef TT_IMAGE_LIST_H
#define TT_IMAGE_LIST_H

#include <stdint.h>

#include "core/err.h"

typedef struct imls_list {
    int n;             /* images */
    char **paths;      /* [n] */
    int32_t *labels;   /* [n] */
    int n_classes;     /* folder / named labels: number of classes; integer labels: max + 1 */
    char **classes;    /* [n_classes] class names, or NULL for integer labels */
} imls_list;

int imls_folder(const char *root, imls_list *out, tt_err *err);
int imls_manifest(const char *csv_path, const char *split, imls_list *out, tt_err *err);
/* A directory is read as a folder (split must be NULL), anything else as a manifest. */
int imls_open(const char *path, const char *split, imls_list *out, tt_err *err);
void imls_free(imls_list *l);

#endif

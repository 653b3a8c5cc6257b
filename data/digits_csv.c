/* digits_csv.c — see digits_csv.h. */
#include "data/digits_csv.h"

csvim_opts digits_opts(int out_size) {
    return (csvim_opts){.channels = 1, .height = DIGITS_SIDE, .width = DIGITS_SIDE, .label_column = -1,
                        .lo = 0.0f, .hi = (float)DIGITS_MAX_VALUE, .classes = 10, .out_size = out_size};
}

int digits_read(const char *path, int out_size, ds_images *out, tt_err *err) {
    csvim_opts o = digits_opts(out_size);
    return csvim_read(path, &o, out, err);
}

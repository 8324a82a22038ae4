/* TEMPORARY: loaders still to come. */
#include "tokenizer/tokenizer_internal.h"
xle_status xle_tokenizer_load_json(const char *path, xle_tokenizer **out, xle_error *err) {
    *out = NULL;
    return xle_fail(err, XLE_ERR_UNSUPPORTED, "%s: tokenizer.json is not supported yet", path);
}

/*
 * yaml_json.h: configuration files written for other tools (EasyEdit's hyper-parameter YAML,
 * mergekit's recipes) read into the same jansson tree a JSON file gives, so that one reader
 * checks both spellings of a file.
 */
#ifndef XLE_YAML_JSON_H
#define XLE_YAML_JSON_H

#include <jansson.h>

#include "xledit.h"

/* Reads PATH as JSON when its name ends in ".json", else as YAML (one document; plain scalars
 * resolved as PyYAML's safe loader does for null, booleans and integers, and any plain scalar
 * strtod reads whole as a float, which is how EasyEdit and pydantic take "5e-1"). Anchors and
 * aliases are refused. Returns a new reference (the caller owns it), or NULL with err set to
 * one line naming the file and the line. */
json_t *xle_yaml_or_json_load(const char *path, xle_error *err);

#endif

"""The C++ rules of Bazel 4.2.3, under the names `@rules_cc//cc:defs.bzl` has.

Each macro forwards to the rule built into Bazel. The tag tells Bazel that the
rule was loaded from this file, as `--incompatible_load_cc_rules_from_bzl`
wants.
"""

_MIGRATION_TAG = "__CC_RULES_MIGRATION_DO_NOT_USE_WILL_BREAK__"

def _tagged(attrs):
    attrs = dict(attrs)
    attrs["tags"] = list(attrs.get("tags", [])) + [_MIGRATION_TAG]
    return attrs

def cc_binary(**attrs):
    native.cc_binary(**_tagged(attrs))

def cc_test(**attrs):
    native.cc_test(**_tagged(attrs))

def cc_library(**attrs):
    native.cc_library(**_tagged(attrs))

def cc_import(**attrs):
    native.cc_import(**_tagged(attrs))

def cc_proto_library(**attrs):
    native.cc_proto_library(**_tagged(attrs))

def fdo_prefetch_hints(**attrs):
    native.fdo_prefetch_hints(**_tagged(attrs))

def fdo_profile(**attrs):
    native.fdo_profile(**_tagged(attrs))

def objc_library(**attrs):
    native.objc_library(**_tagged(attrs))

def objc_import(**attrs):
    native.objc_import(**_tagged(attrs))

def cc_toolchain(**attrs):
    native.cc_toolchain(**_tagged(attrs))

def cc_toolchain_suite(**attrs):
    native.cc_toolchain_suite(**_tagged(attrs))

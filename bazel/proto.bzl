"""Generates C++ protobuf and gRPC code with Debian's protoc and grpc_cpp_plugin.

Native proto_library needs @com_google_protobuf, which cannot be downloaded
here, so a genrule runs /usr/bin/protoc directly. Protos are compiled with
-I. from the workspace root; code includes "proto/claudenet/v1/x.pb.h".
"""

load("@rules_cc//cc:defs.bzl", "cc_library")

def cc_grpc_proto_library(name, srcs, deps = [], grpc = True, visibility = None):
    """One cc_library with the messages (and services when grpc=True) of srcs.

    Args:
      name: target name of the resulting cc_library.
      srcs: .proto files in this package.
      deps: other cc_grpc_proto_library targets whose protos srcs import.
      grpc: also run grpc_cpp_plugin.
      visibility: visibility of the cc_library.
    """
    pkg = native.package_name()
    outs = []
    hdrs = []
    for src in srcs:
        base = src[:-len(".proto")]
        outs += [base + ".pb.cc", base + ".pb.h"]
        hdrs.append(base + ".pb.h")
        if grpc:
            outs += [base + ".grpc.pb.cc", base + ".grpc.pb.h"]
            hdrs.append(base + ".grpc.pb.h")
    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "
    dep_protos = [d + "_protos" for d in deps]
    native.filegroup(name = name + "_protos", srcs = srcs + dep_protos, visibility = visibility)
    native.genrule(
        name = name + "_gen",
        srcs = srcs + dep_protos,
        outs = outs,
        cmd = ("/usr/bin/protoc -I. --cpp_out=$(GENDIR) " + grpc_flags +
               " ".join(["%s/%s" % (pkg, s) for s in srcs])),
    )
    cc_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".cc")],
        hdrs = hdrs,
        deps = deps + ["@system//:grpc"],
        visibility = visibility,
    )

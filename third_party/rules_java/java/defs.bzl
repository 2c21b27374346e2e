"""Offline stand-in for @rules_java (Bazel's own tools load it; we build no Java)."""

java_binary = native.java_binary
java_import = native.java_import
java_library = native.java_library
java_runtime = native.java_runtime
java_toolchain = native.java_toolchain

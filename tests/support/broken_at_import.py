"""A plugin module that fails while importing, as a plugin with a missing dependency would."""

raise RuntimeError("this plugin needs a library that is not installed")

"""An allowed package for test_registry: dotted names in its submodules resolve too."""

"""The built-in recipes (data only: *.yaml), installed inside the package as edgecnn.recipes."""

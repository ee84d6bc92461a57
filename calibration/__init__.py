"""The calibration lists recorded for the built-in recipes (data only: *.txt), installed inside the
package as edgecnn.calibration."""

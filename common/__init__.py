"""What every stage shares: the artifact contract, the run-directory view, model loading, the text classifier,
datasets and suites, errors, and the built-in world. A stage (train, export, calib, serve) imports only this
package and itself."""

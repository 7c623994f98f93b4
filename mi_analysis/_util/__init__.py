"""Foundation helpers every layer may use: atomic files and csv, argument checks, device choice,
config records, the package version. Nothing here imports the rest of the package."""

"""probeguard_models: the shipped bundles (`<name>/<version>/manifest.json` + `heads.safetensors`), installed as
package data so that an installed probeguard finds them (see detector/paths.py)."""

"""Everything that reads images and labels: folders and manifests, the dataset suites, image decoding, transforms,
and the built-in world. It imports only common/; every stage may import it."""

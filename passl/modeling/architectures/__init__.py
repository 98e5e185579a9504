from passl.modeling.architectures.classification import Classification  # noqa: F401

from passl.modeling.architectures.classification import Classification  # noqa: F401
from passl.modeling.architectures.fcmae import FCMAE  # noqa: F401

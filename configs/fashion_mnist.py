"""Class-conditional DCGAN on Fashion-MNIST (60,000 clothes, 28x28, 10 classes) from TFDS.

Command:  python train.py --config configs/fashion_mnist.py
          (needs TFDS's fashion_mnist prepared in array_record format; train.py prints how when it is not)
Expect:   not measured in this repository (its machines have no network to fetch the data).
Anchor:   configs/mnist_dcgan.py, unchanged but for the data.
Time:     20,000 steps at about 10 steps/s on a 2-core CPU (35 minutes); far faster on a GPU.
"""

from configs import mnist_dcgan


def get_config():
    config = mnist_dcgan.get_config()
    config.data.name = "fashion_mnist"
    return config

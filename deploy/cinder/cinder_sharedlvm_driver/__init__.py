"""Cinder volume driver for a shared (lvmlockd + sanlock) LVM volume group.

`cinder_sharedlvm_driver.driver.SharedLVMDriver` is the driver class named in cinder.conf; it
talks to aos-controller over oslo.messaging (see docs/cinder.md).
"""

__version__ = "0.1.0"  # the one version of the project: ProductVersion.current (Tests/cinder/test_config.py)

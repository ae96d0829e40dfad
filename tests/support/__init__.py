"""What the tests share: fakes of the stores, real servers started on loopback, receivers, and fixtures."""

"""What the tests and the benchmarks share: synthetic material (face photographs and clips, hostile uploads,
realistic video and the re-encodes that attack a watermark) and the harness that starts real ``kinema``
processes. Not part of the shipped package."""

import sys

from .early import launch_zygote

launch_zygote(sys.argv[1:])   # before the imports below: its ~1 s of numpy and scikit-learn overlaps theirs

from .process import main  # noqa: E402

sys.exit(main())

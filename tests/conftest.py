import os

# Keep test logs readable: TensorFlow's C++ start-up chatter is not ours.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

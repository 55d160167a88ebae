backend = "np"

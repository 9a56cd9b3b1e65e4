"""The lessons' rerunnable experiments and speed benchmarks (lesson 10's recipe grid, lesson 11's diffusion
study, ``prodgen bench``). May import ``apps``, ``evaluation`` and below; only the CLI imports them."""

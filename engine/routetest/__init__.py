"""``bsp test``: run the route tests written in route files.

    runner.py    discover and compile route files, run each test in an isolated engine
    expect.py    check one test's expectations against what the engine did
    coverage.py  steps and branches the tests reached (and the ones no test reached)
    junit.py     JUnit XML for CI
"""

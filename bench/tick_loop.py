"""A reference: a scheduler with a 1-second tick loop (like petit), for the idle comparison."""

import time

print('{"ready": true}', flush=True)
while True:
    time.sleep(1)

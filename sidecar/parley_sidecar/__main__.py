from parley_sidecar.cli import main

main()

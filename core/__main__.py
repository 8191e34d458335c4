from runpipe.cli import main

main()

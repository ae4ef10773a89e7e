// placeholder: the package's exports are added as they are built

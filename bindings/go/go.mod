module libvstor/bindings/go

go 1.19

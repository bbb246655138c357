fn main() {
    println!("provisioner: not yet implemented");
}
